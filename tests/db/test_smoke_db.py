from sync.db import schema


def test_template_has_every_migration(conn):
    versions = [v for v, _ in schema.migrations()]
    assert schema.migrate(conn) == []
    stored = [r[0] for r in conn.execute("select version from schema_migrations order by 1")]
    assert stored == versions
    files = [path for _, path in schema.migrations()] + schema.repeatables()
    recorded = dict(conn.execute("select name, checksum from schema_files").fetchall())
    assert recorded == {schema.file_name(path): schema.checksum(path) for path in files}
