"""Schema and SQL: migrations (idempotent, pasteable twice), row level security, the
minimal user row, deduplicating inserts, token writes and the per-user advisory lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sync import schema
from sync.job.transform import item_to_play
from sync.store import plays as plays_store
from sync.store import runs as runs_store
from sync.store import users as user_store
from tests.conftest import add_user
from tests.spotify_fakes import item, window
from tests.sync_helpers import CliRunner

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CORE_TABLES = {"schema_migrations", "user_tokens", "artists", "albums", "tracks",
               "track_artists", "listening_history", "sync_runs", "sync_run_users"}  # fmt: skip


def _tables(conn) -> dict[str, bool]:
    rows = conn.execute(
        "select c.relname, c.relrowsecurity from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'public' and c.relkind in ('r', 'p')"
    ).fetchall()
    return dict(rows)


# -- migrations ---------------------------------------------------------------------
def test_migrate_command_applies_everything_once(monkeypatch, capsys, tmp_path, empty_db_url):
    run = CliRunner(monkeypatch, capsys, tmp_path, empty_db_url)
    versions = [v for v, _ in schema.migrations()]
    first = run("migrate")
    assert first.code == 0, first.err
    assert first.out.strip() == f"applied {len(versions)} migrations: {', '.join(versions)}"
    second = run("migrate")
    assert second.code == 0
    assert second.out.strip() == "schema is up to date"
    with psycopg.connect(empty_db_url) as conn:
        stored = [r[0] for r in conn.execute("select version from schema_migrations order by 1")]
        assert stored == versions
        assert schema.migrate(conn) == []


def test_pasting_every_migration_twice_is_harmless(empty_db_url):
    """What a Supabase user does in the SQL editor: paste each file, maybe twice."""
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        for _ in range(2):
            for _, path in schema.migrations():
                conn.execute(path.read_text())
        add_user(conn, "alice")
        for _, path in schema.migrations():  # again, over data
            conn.execute(path.read_text())
        assert schema.migrate(conn) == []  # `migrate` after pasting applies nothing
        assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 1


def test_migrations_are_numbered_files():
    names = [path.name for _, path in schema.migrations()]
    assert names and names[0] == "001_core.sql"
    numbers = [int(name[:3]) for name in names]
    assert numbers == sorted(set(numbers))


def test_row_level_security_on_every_table(conn):
    tables = _tables(conn)
    assert set(tables) >= CORE_TABLES
    assert [name for name, rls in tables.items() if not rls] == []


def test_the_plays_view_keeps_row_level_security(conn):
    options = conn.execute(
        "select reloptions from pg_class where relname = 'plays' and relkind = 'v'"
    ).fetchone()[0]
    assert "security_invoker=true" in options


# -- users --------------------------------------------------------------------------
def test_user_with_only_id_and_refresh_token_is_valid(conn):
    conn.execute("insert into user_tokens (user_id, refresh_token) values ('web', 'refresh-web-1')")
    (user,) = user_store.load_users(conn)
    assert (user.user_id, user.refresh_token, user.status) == ("web", "refresh-web-1", "active")
    assert user.access_token is None and user.access_token_expires_at is None
    assert user.authorized_at is not None  # defaults to now: the 6-month clock starts
    assert isinstance(user.key, int)


def test_save_tokens_keeps_the_old_refresh_token_when_none_came(conn):
    key = add_user(conn, "alice", "refresh-alice-0001")
    expires = NEWEST + timedelta(hours=1)
    user_store.save_tokens(conn, key, "access-1", expires, None, None)
    user = user_store.load_user(conn, key)
    assert (user.refresh_token, user.access_token, user.access_token_expires_at) == (
        "refresh-alice-0001", "access-1", expires)  # fmt: skip
    user_store.save_tokens(conn, key, "access-2", expires, "refresh-alice-0002", "scope-x")
    user = user_store.load_user(conn, key)
    assert (user.refresh_token, user.scope) == ("refresh-alice-0002", "scope-x")


def test_mark_needs_reauth_records_the_reason_and_drops_the_access_token(conn):
    key = add_user(conn, "alice", access_token="access-1")
    user_store.mark_needs_reauth(conn, key, "Spotify answered 400 invalid_grant: revoked")
    user = user_store.load_user(conn, key)
    assert user.status == "needs_reauth"
    assert user.status_reason == "Spotify answered 400 invalid_grant: revoked"
    assert user.access_token is None


# -- plays ------------------------------------------------------------------------------
def test_insert_plays_is_idempotent_and_returns_only_new_rows(conn):
    key = add_user(conn)
    plays = [item_to_play(i) for i in window(NEWEST, 20)]
    with conn.transaction():
        assert len(plays_store.insert_plays(conn, key, plays)) == 20
    with conn.transaction():
        again = plays_store.insert_plays(
            conn, key, plays + [item_to_play(item(NEWEST + timedelta(1)))]
        )
    assert again == [NEWEST + timedelta(1)]
    assert plays_store.count_plays(conn, key) == 21


def test_unique_on_user_and_played_at_but_per_user(conn):
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob", "refresh-bob-1")
    plays = [item_to_play(i) for i in window(NEWEST, 3)]
    with conn.transaction():
        plays_store.insert_plays(conn, alice, plays)
        plays_store.insert_plays(conn, bob, plays)
    assert plays_store.count_plays(conn, alice) == plays_store.count_plays(conn, bob) == 3
    assert conn.execute("select count(*) from tracks").fetchone()[0] == 3  # shared dimensions
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "insert into listening_history (user_id, played_at, track_id) "
            "select user_id, played_at, track_id from listening_history limit 1"
        )


def test_played_at_kept_to_the_millisecond(conn):
    key = add_user(conn)
    at = datetime(2026, 11, 28, 11, 0, 1, 757000, tzinfo=UTC)
    with conn.transaction():
        plays_store.insert_plays(
            conn, key, [item_to_play(item(at)), item_to_play(item(at.replace(microsecond=758000)))]
        )
    assert plays_store.newest_played_at(conn, key) == at.replace(microsecond=758000)
    assert plays_store.count_plays(conn, key) == 2


def test_api_plays_have_no_invented_duration(conn):
    key = add_user(conn)
    with conn.transaction():
        plays_store.insert_plays(conn, key, [item_to_play(item(NEWEST, duration_ms=123_000))])
    ms_played, source, duration = conn.execute(
        "select h.ms_played, h.source, t.duration_ms from listening_history h "
        "join tracks t on t.id = h.track_id"
    ).fetchone()
    assert (ms_played, source, duration) == (None, plays_store.SOURCE_API, 123_000)


def test_track_artists_in_order_without_duplicates(conn):
    key = add_user(conn)
    plays = [item_to_play(item(NEWEST - timedelta(minutes=i), 4, artists=3)) for i in range(3)]
    with conn.transaction():
        plays_store.insert_plays(conn, key, plays)
    rows = conn.execute(
        "select ta.position, a.uri from track_artists ta join artists a on a.id = ta.artist_id "
        "order by ta.position"
    ).fetchall()
    assert rows == [
        (0, "spotify:artist:art0000000000000000004"),
        (1, "spotify:artist:art0000000000000000000"),
        (2, "spotify:artist:art0000000000000000001"),
    ]


# -- locks and run records -----------------------------------------------------------
def test_user_lock_is_exclusive_between_sessions(db_url, conn):
    key = add_user(conn)
    with psycopg.connect(db_url) as one, psycopg.connect(db_url) as two:
        assert user_store.try_lock_user(one, key)
        assert not user_store.try_lock_user(two, key)
        assert user_store.try_lock_user(two, key + 1)  # other users are free
        user_store.unlock_user(one, key)
        assert user_store.try_lock_user(two, key)
    with psycopg.connect(db_url) as three:  # a closed session releases its locks
        assert user_store.try_lock_user(three, key)


def test_last_attempts_ignore_skips(conn):
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob", "refresh-bob-1")
    run_id = runs_store.start_run(conn, "manual", None, False)
    for key, status in ((alice, "ok"), (bob, "skipped")):
        runs_store.record_user_result(
            conn, run_id, key, status=status, started_at=NEWEST, fetched=0, new_tracks=0,
            skipped_items=0, possible_gap=False, error_class=None, error=None, warnings=[],
        )  # fmt: skip
    assert runs_store.last_attempts(conn) == {alice: NEWEST}
