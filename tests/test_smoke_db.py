from sync import db


def test_template_has_every_migration(conn):
    versions = [v for v, _ in db.migrations()]
    assert db.pending_migrations(conn) == []
    stored = [r[0] for r in conn.execute("select version from schema_migrations order by 1")]
    assert stored == versions
