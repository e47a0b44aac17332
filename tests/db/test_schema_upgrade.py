"""Schema upgrades: a database created at any earlier commit that changed sql/ and then
migrated by this checkout's `migrate` has the same catalogue as a fresh install.

Forks pull main at arbitrary commits, so this replays history: for each commit of
`git log -- sql/`, the files of that commit's sql/ are applied the way that commit's
migrate (or a paste into Supabase's SQL editor) did, then `schema.migrate` runs, and
the catalogue is compared with the session's freshly migrated template database.

Needs the git history of this checkout. Without it (not a git checkout, or a shallow
clone) the test FAILS; set SYNC_SKIP_HISTORY_TEST=1 to skip it on purpose.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

from sync.db import locks, schema
from sync.errors import UserError
from tests.support.pg import PgCluster, round_trips, with_dbname

REPO = Path(__file__).resolve().parents[2]


# -- the catalogue ------------------------------------------------------------------
# Everything a migration can create in the public schema, as comparable text. Columns
# are compared as a set (order-insensitive): `add column` on an older database appends
# where a fresh install may have the column elsewhere, which changes nothing that
# `select *`-free code can see. Rows are not compared (schema_files and
# schema_migrations hold data, not structure).
CATALOGUE = {
    "relations": """
        select c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity::text
               || ' force=' || c.relforcerowsecurity::text
               || ' ' || coalesce(c.reloptions::text, '')
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')""",
    "columns": """
        select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || case when a.attnotnull then ' not null' else '' end
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
               || case a.attidentity::text when '' then ''
                       else ' identity ' || a.attidentity::text end
               || case a.attgenerated::text when '' then '' else ' generated' end
               || ' storage ' || a.attstorage::text || coalesce(' collate ' || co.collname, '')
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          join pg_namespace n on n.oid = c.relnamespace
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          left join pg_collation co on co.oid = a.attcollation and a.attcollation <> 100
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
           and a.attnum > 0 and not a.attisdropped""",
    "constraints": """
        select c.relname || '.' || k.conname || ': ' || pg_get_constraintdef(k.oid)
          from pg_constraint k
          join pg_class c on c.oid = k.conrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public'""",
    "indexes": """
        select pg_get_indexdef(i.indexrelid)
          from pg_index i
          join pg_class c on c.oid = i.indrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public'""",
    "functions": """
        select 'ACL ' || coalesce(p.proacl::text, 'default') || E'\\n' || pg_get_functiondef(p.oid)
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public'""",
    "views": """
        select c.relname || ': ' || pg_get_viewdef(c.oid)
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('v', 'm')""",
    "triggers": """
        select pg_get_triggerdef(t.oid)
          from pg_trigger t
          join pg_class c on c.oid = t.tgrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and not t.tgisinternal""",
    "policies": """
        select tablename || '.' || policyname || ' ' || permissive || ' ' || roles::text
               || ' ' || cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
          from pg_policies where schemaname = 'public'""",
    "grants": """
        select c.relname || ' ' || coalesce(c.relacl::text, 'default')
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S')""",
}


def catalogue(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {kind: {row[0] for row in conn.execute(query)} for kind, query in CATALOGUE.items()}


def differences(got: dict[str, set[str]], want: dict[str, set[str]]) -> list[str]:
    out = []
    for kind in CATALOGUE:
        for text in sorted(want[kind] - got[kind]):
            out.append(f"{kind}: missing or different:\n    {text[:2000]}")
        for text in sorted(got[kind] - want[kind]):
            out.append(f"{kind}: extra or different:\n    {text[:2000]}")
    return out


# -- git history --------------------------------------------------------------------
def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout


def sql_history() -> list[tuple[str, str]]:
    """(commit, sql/ tree) of every commit that changed sql/, oldest first, one per tree.

    Fails (does not skip) when the history is missing: a check that silently skips
    cannot fail. SYNC_SKIP_HISTORY_TEST=1 skips on purpose.
    """
    if os.environ.get("SYNC_SKIP_HISTORY_TEST") == "1":
        pytest.skip("SYNC_SKIP_HISTORY_TEST=1: schema upgrade from earlier commits not checked")
    try:
        shallow = _git("rev-parse", "--is-shallow-repository").strip()
        commits = _git("log", "--reverse", "--format=%H", "--", "sql/").split()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(
            f"the upgrade test needs this checkout's git history ({exc}); run it in a git "
            "clone, or set SYNC_SKIP_HISTORY_TEST=1 to skip it on purpose",
            pytrace=False,
        )
    if shallow == "true":
        pytest.fail(
            "this is a shallow clone: the upgrade test needs every commit that changed sql/ "
            "(git fetch --unshallow; in GitHub Actions, actions/checkout with fetch-depth: 0), "
            "or set SYNC_SKIP_HISTORY_TEST=1 to skip it on purpose",
            pytrace=False,
        )
    if not commits:
        pytest.fail("git log -- sql/ found no commit: is this the project's repository?")
    seen: dict[str, str] = {}
    for commit in commits:
        seen.setdefault(_git("rev-parse", f"{commit}:sql").strip(), commit)
    return [(commit, tree) for tree, commit in seen.items()]


def materialize(commit: str, into: Path) -> Path:
    """That commit's sql/ directory, written under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "sql"],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "sql"


def apply_like_then(conn: psycopg.Connection, sql_dir: Path) -> None:
    """Apply an earlier commit's sql/ the way its migrate did: every numbered file in
    order, each recording its version; then (from the commits that have them) every
    repeatable file in order. Checksums are not recorded: like a paste."""
    for version, path in schema.migrations(sql_dir):
        with conn.transaction():
            conn.execute(path.read_text())
            conn.execute(
                "insert into schema_migrations (version) values (%s) on conflict do nothing",
                (version,),
            )
    for path in schema.repeatables(sql_dir):
        with conn.transaction():
            conn.execute(path.read_text())


@pytest.fixture(scope="module")
def fresh_catalogue(pg_cluster: PgCluster) -> dict[str, set[str]]:
    return catalogue(with_dbname(pg_cluster.admin_url, pg_cluster.template))


def test_every_earlier_commit_upgrades_to_a_fresh_install(pg_cluster, fresh_catalogue):
    history = sql_history()
    failures = []
    with tempfile.TemporaryDirectory(prefix="shs-sql-history-") as tmp:
        for commit, _tree in history:
            sql_dir = materialize(commit, Path(tmp) / commit)
            url = pg_cluster.create(migrated=False)
            try:
                with psycopg.connect(url) as conn:
                    apply_like_then(conn, sql_dir)
                    schema.migrate(conn)
                    assert schema.migrate(conn) == [], f"{commit[:7]}: a second migrate applied"
                found = differences(catalogue(url), fresh_catalogue)
            finally:
                pg_cluster.drop(url)
            if found:
                failures.append(
                    f"database created at {commit[:7]}, migrated here:\n  " + "\n  ".join(found)
                )
    assert not failures, "\n\n".join(failures)


def test_the_comparison_sees_a_changed_column_function_and_grant(pg_cluster, fresh_catalogue):
    """The upgrade check can fail: each kind of drift shows up as a difference."""
    url = pg_cluster.create()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("alter table sync_runs alter column trigger set default 'x'")
            conn.execute(
                "create or replace function listening_hint() returns int language sql as 'select 1'"
            )
            conn.execute("grant execute on function analytics_rebuild(integer) to public")
        found = "\n".join(differences(catalogue(url), fresh_catalogue))
    finally:
        pg_cluster.drop(url)
    assert "sync_runs.trigger text default 'x'" in found
    assert "listening_hint" in found
    assert "analytics_rebuild" in found and "=X/" in found


# -- migrate ------------------------------------------------------------------------
def copy_sql(into: Path) -> Path:
    """This checkout's sql/, copied so a test can change a file."""
    target = into / "sql"
    for path in [p for _, p in schema.migrations()] + schema.repeatables():
        name = schema.file_name(path)
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(path.read_bytes())
    return target


def test_migrate_twice_applies_nothing_the_second_time(empty_db_url):
    with psycopg.connect(empty_db_url) as conn:
        first = schema.migrate(conn)
        assert first == [v for v, _ in schema.migrations()] + [
            schema.file_name(p) for p in schema.repeatables()
        ]
        assert schema.migrate(conn) == []
        recorded = dict(conn.execute("select name, checksum from schema_files").fetchall())
    every = [p for _, p in schema.migrations()] + schema.repeatables()
    assert recorded == {schema.file_name(p): schema.checksum(p) for p in every}


def test_a_changed_repeatable_file_is_applied_again(empty_db_url, tmp_path):
    sql_dir = copy_sql(tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        schema.migrate(conn, sql_dir)
        views = sql_dir / "repeatable" / "50_views.sql"
        views.write_text(
            views.read_text() + "\ncreate or replace view shs_marker as select 1 as one;\n"
        )
        schema.checksum.cache_clear()  # checksums are computed once per process and path
        assert schema.migrate(conn, sql_dir) == ["repeatable/50_views.sql"]
        assert conn.execute("select one from shs_marker").fetchone() == (1,)
        assert schema.migrate(conn, sql_dir) == []
    schema.checksum.cache_clear()


def test_a_numbered_file_changed_after_it_was_applied_warns_only(empty_db_url, tmp_path, caplog):
    sql_dir = copy_sql(tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        schema.migrate(conn, sql_dir)
        core = sql_dir / "001_core.sql"
        core.write_text(core.read_text() + "\ncreate table shs_never (x int);\n")
        schema.checksum.cache_clear()
        with caplog.at_level("WARNING", logger="sync.db.schema"):
            assert schema.migrate(conn, sql_dir) == []
        assert conn.execute("select to_regclass('shs_never')").fetchone() == (None,)
    schema.checksum.cache_clear()
    assert "sql/001_core.sql changed after it was applied" in caplog.text
    assert "append-only" in caplog.text


@pytest.mark.parametrize("autocommit", [False, True])
def test_an_up_to_date_migrate_is_one_round_trip(db_url, autocommit):
    with psycopg.connect(db_url, autocommit=autocommit, prepare_threshold=None) as conn:
        applied = []
        assert round_trips(conn, lambda: applied.extend(schema.migrate(conn))) == 1
        assert applied == []
        assert conn.autocommit is autocommit
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_an_older_server_is_refused_in_one_line():
    assert schema.server_version_problem(150000) is None
    assert schema.server_version_problem(180001) is None
    problem = schema.server_version_problem(140009)
    assert problem.startswith("the schema needs PostgreSQL 15 or newer; this server is 14.9: ")
    assert "\n" not in problem and "DATABASE_URL" in problem


def test_migrate_checks_the_version_before_applying_anything(empty_db_url, monkeypatch):
    monkeypatch.setattr(schema, "MIN_SERVER_VERSION", 10_000_000)  # newer than any server
    with psycopg.connect(empty_db_url) as conn:
        with pytest.raises(UserError, match="needs PostgreSQL 15 or newer; this server is"):
            schema.migrate(conn)
        assert conn.execute("select to_regclass('schema_migrations')").fetchone() == (None,)


def test_a_second_migrate_waits_a_bounded_time_for_the_lock(empty_db_url):
    with psycopg.connect(empty_db_url, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (locks.MIGRATION,))
        with psycopg.connect(empty_db_url) as conn:
            with pytest.raises(UserError, match="another migrate holds the schema lock") as err:
                schema.migrate(conn, lock_wait=0.3)
            assert "\n" not in str(err.value)
            assert conn.execute("select to_regclass('schema_migrations')").fetchone() == (None,)
        holder.execute("select pg_advisory_unlock(%s)", (locks.MIGRATION,))


# -- privileges ---------------------------------------------------------------------
WRITERS = [
    "catalogue_upsert(jsonb)",
    "catalogue_import_stage()",
    "catalogue_import_tracks(boolean)",
    "history_import_merge(integer, timestamptz[], integer[], timestamptz[])",
    "history_import_drop_keys()",
    "history_import_add_keys(text[], text[], text[])",
    "analytics_forget_user()",
    "analytics_refresh_days(integer, date[])",
    "analytics_refresh_plays(integer, timestamptz[])",
    "analytics_refresh_tracks(integer[])",
    "analytics_rebuild(integer)",
    "revoke_execute_from_api(regprocedure[])",
    "sync_store_user(integer, bigint, bigint, timestamptz[], text[], jsonb, jsonb, interval,"
    " integer)",
]


def test_only_read_only_functions_are_executable_by_everyone(conn):
    """What Supabase's API roles may call: PUBLIC (and anon, authenticated) cannot
    execute any function that writes; the listening_* readers stay executable."""

    def public_can(signature: str) -> bool:
        return conn.execute(
            "select has_function_privilege('public', %s::regprocedure, 'execute')", (signature,)
        ).fetchone()[0]

    for signature in WRITERS:
        assert not public_can(signature), signature
    readers = [
        "listening_top(integer, smallint, date, date, integer)",
        "listening_summary(integer, date, date)",
        "history_api_plays_to_insert(integer, timestamptz[], integer[], integer)",
    ]
    for signature in readers:
        assert public_can(signature), signature
    # every function whose body inserts, updates or deletes is in WRITERS (the others
    # there write through those: analytics_refresh_plays, analytics_refresh_tracks)
    writes = conn.execute(
        r"""select p.oid::regprocedure::text from pg_proc p
             join pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'public'
              and p.prosrc ~* '\m(insert\s+into|update\s+\w+\s+\w*\s*set|delete\s+from)\M'"""
    ).fetchall()
    names = {row[0].split("(")[0] for row in writes}
    assert names == {
        "catalogue_upsert",
        "catalogue_import_tracks",
        "history_import_merge",
        "sync_store_user",
        "analytics_forget_user",
        "analytics_refresh_days",
        "analytics_rebuild",
    }
