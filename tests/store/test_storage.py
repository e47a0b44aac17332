"""Schema and SQL: migrations (idempotent, pasteable twice), row level security, the
minimal user row, deduplicating inserts, token writes and the per-user advisory lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sync.db import schema
from sync.job.transform import item_to_play
from sync.store import outcome
from sync.store import plays as plays_store
from sync.store import runs as runs_store
from sync.store import users as user_store
from sync.store.sources import SOURCE_API
from tests.conftest import add_user
from tests.support.spotify_fakes import item, window
from tests.support.store import store_plays
from tests.support.sync_helpers import CliRunner

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
    repeatable = [schema.file_name(path) for path in schema.repeatables()]
    first = run("migrate")
    assert first.code == 0, first.err
    done = versions + repeatable
    assert first.out.strip() == f"applied {len(done)} migrations: {', '.join(done)}"
    second = run("migrate")
    assert second.code == 0
    assert second.out.strip() == "schema is up to date"
    with psycopg.connect(empty_db_url) as conn:
        stored = [r[0] for r in conn.execute("select version from schema_migrations order by 1")]
        assert stored == versions
        assert schema.migrate(conn) == []


def paste_everything(conn: psycopg.Connection) -> None:
    """What docs/schema.md tells a Supabase user to paste, in that order."""
    for path in [path for _, path in schema.migrations()] + schema.repeatables():
        conn.execute(path.read_text())


def test_pasting_every_file_twice_is_harmless(empty_db_url):
    """What a Supabase user does in the SQL editor: paste each file, maybe twice."""
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        for _ in range(2):
            paste_everything(conn)
        add_user(conn, "alice")
        paste_everything(conn)  # again, over data
        # A pasted numbered file records its version; a pasted repeatable file cannot know
        # its own checksum, so `migrate` after pasting applies the repeatable files once.
        repeatable = [schema.file_name(path) for path in schema.repeatables()]
        assert schema.migrate(conn) == repeatable
        assert schema.migrate(conn) == []
        assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 1
        recorded = {r[0] for r in conn.execute("select name from schema_files")}
        assert recorded == {schema.file_name(p) for _, p in schema.migrations()} | set(repeatable)


def test_migrations_are_numbered_files():
    names = [path.name for _, path in schema.migrations()]
    assert names and names[0] == "001_core.sql"
    numbers = [int(name[:3]) for name in names]
    assert numbers == sorted(set(numbers))


def test_repeatable_files_hold_every_function_and_view_and_no_table():
    """Functions and views are defined in sql/repeatable/ (numbered files only keep their
    first versions); tables, columns and indexes only in numbered migrations."""
    import re

    numbered = "\n".join(path.read_text() for _, path in schema.migrations())
    repeatable = "\n".join(path.read_text() for path in schema.repeatables())
    defined = re.compile(r"^create or replace (function|view) (\w+)", re.M | re.I)
    dropped = set(re.findall(r"^drop function if exists (\w+)", repeatable, re.M | re.I))
    kept = {m[1] for m in defined.findall(numbered)} - dropped  # obsolete ones are dropped there
    assert kept <= {m[1] for m in defined.findall(repeatable)}
    assert not re.search(r"^\s*(create|alter) (table|index)", repeatable, re.M | re.I)


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
    key = conn.execute("select id from user_tokens").fetchone()[0]
    user = user_store.load_user(conn, key)
    assert (user.user_id, user.refresh_token, user.status) == ("web", "refresh-web-1", "active")
    assert user.access_token is None and user.access_token_expires_at is None
    assert user.authorized_at is not None  # defaults to now: the 6-month clock starts
    assert isinstance(user.key, int)


def test_save_tokens_keeps_the_old_refresh_token_when_none_came(conn):
    key = add_user(conn, "alice", "refresh-alice-0001")
    expires = NEWEST + timedelta(hours=1)
    assert user_store.save_tokens(conn, key, "refresh-alice-0001", "access-1", expires, None, None)
    user = user_store.load_user(conn, key)
    assert (user.refresh_token, user.access_token, user.access_token_expires_at) == (
        "refresh-alice-0001", "access-1", expires)  # fmt: skip
    assert user_store.save_tokens(conn, key, "refresh-alice-0001", "access-2", expires,
                                  "refresh-alice-0002", "scope-x")  # fmt: skip
    user = user_store.load_user(conn, key)
    assert (user.refresh_token, user.scope) == ("refresh-alice-0002", "scope-x")


def test_token_writes_are_compare_and_set_on_the_token_used(conn):
    """A run that used an older refresh token never overwrites what is stored now."""
    key = add_user(conn, "alice", "refresh-alice-0002")  # a login stored a newer one
    expires = NEWEST + timedelta(hours=1)
    assert not user_store.save_tokens(conn, key, "refresh-alice-0001", "access-old", expires,
                                      "refresh-alice-0003", None)  # fmt: skip
    assert not user_store.mark_needs_reauth(conn, key, "refresh-alice-0001", "invalid_grant")
    user = user_store.load_user(conn, key)
    assert (user.refresh_token, user.access_token, user.status) == (
        "refresh-alice-0002", None, "active")  # fmt: skip
    conn.execute("update user_tokens set status = 'removed', refresh_token = null")
    assert not user_store.save_tokens(conn, key, "refresh-alice-0002", "a", expires, None, None)
    assert user_store.load_user(conn, key).refresh_token is None  # removal erased it for good


def test_mark_needs_reauth_records_the_reason_and_drops_the_access_token(conn):
    key = add_user(conn, "alice", access_token="access-1")
    assert user_store.mark_needs_reauth(
        conn, key, "refresh-alice-0001", "Spotify answered 400 invalid_grant: revoked"
    )
    user = user_store.load_user(conn, key)
    assert user.status == "needs_reauth"
    assert user.status_reason == "Spotify answered 400 invalid_grant: revoked"
    assert user.access_token is None


# -- plays ------------------------------------------------------------------------------
def test_insert_plays_is_idempotent_and_returns_only_new_rows(conn):
    key = add_user(conn)
    plays = [item_to_play(i) for i in window(NEWEST, 20)]
    with conn.transaction():
        assert len(store_plays(conn, key, plays)) == 20
    with conn.transaction():
        again = store_plays(conn, key, plays + [item_to_play(item(NEWEST + timedelta(1)))])
    assert again == [NEWEST + timedelta(1)]
    assert plays_store.count_plays(conn, key) == 21


def test_unique_on_user_and_played_at_but_per_user(conn):
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob", "refresh-bob-1")
    plays = [item_to_play(i) for i in window(NEWEST, 3)]
    with conn.transaction():
        store_plays(conn, alice, plays)
        store_plays(conn, bob, plays)
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
        store_plays(
            conn, key, [item_to_play(item(at)), item_to_play(item(at.replace(microsecond=758000)))]
        )
    newest = "select max(played_at) from listening_history where user_id = %s"
    assert conn.execute(newest, (key,)).fetchone()[0] == at.replace(microsecond=758000)
    assert plays_store.count_plays(conn, key) == 2


def test_api_plays_have_no_invented_duration(conn):
    key = add_user(conn)
    with conn.transaction():
        store_plays(conn, key, [item_to_play(item(NEWEST, duration_ms=123_000))])
    ms_played, source, duration = conn.execute(
        "select h.ms_played, h.source, t.duration_ms from listening_history h "
        "join tracks t on t.id = h.track_id"
    ).fetchone()
    assert (ms_played, source, duration) == (None, SOURCE_API, 123_000)


def test_track_artists_in_order_without_duplicates(conn):
    key = add_user(conn)
    plays = [item_to_play(item(NEWEST - timedelta(minutes=i), 4, artists=3)) for i in range(3)]
    with conn.transaction():
        store_plays(conn, key, plays)
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
def test_a_claim_is_exclusive_until_released_or_expired(conn):
    key = add_user(conn)
    other = add_user(conn, "bob", "refresh-bob-1")
    lease = timedelta(minutes=15)
    first = user_store.claim(conn, key, 1, lease)
    assert first.user is not None and first.user.refresh_token == "refresh-alice-0001"
    second = user_store.claim(conn, key, 2, lease)
    assert second.user is None and second.busy and second.held_until is not None
    assert user_store.claim(conn, other, 2, lease).user is not None  # other users are free
    assert user_store.claim(conn, key, 1, lease).user is not None  # the holder may renew
    outcome.save(conn, key, 2, None, {})  # not the holder: its write frees nothing
    assert user_store.claim(conn, key, 2, lease).busy
    outcome.save(conn, key, 1, None, {})
    assert user_store.claim(conn, key, 2, lease).user is not None
    # a holder that died: its claim expires by itself
    conn.execute("update user_tokens set lease_until = now() - interval '1 second'")
    assert user_store.claim(conn, key, 3, lease).user is not None


def test_only_active_users_are_claimed_and_the_status_says_why(conn):
    key = add_user(conn, status="needs_reauth")
    claim = user_store.claim(conn, key, 1, timedelta(minutes=15))
    assert claim.user is None and not claim.busy and claim.status == "needs_reauth"
    gone = user_store.claim(conn, key + 100, 1, timedelta(minutes=15))
    assert gone.user is None and gone.status is None


def test_last_attempts_ignore_skips(conn):
    alice, bob = add_user(conn, "alice"), add_user(conn, "bob", "refresh-bob-1")
    run_id = runs_store.open_run(conn, "manual", None, timedelta(minutes=5)).run_id
    for key, status in ((alice, "ok"), (bob, "skipped")):
        outcome.save(conn, key, 0, run_id, {"status": status, "started_at": NEWEST.isoformat()})
    last = {c.key: (c.last_attempt, c.last_outcome) for c in runs_store.candidates(conn)}
    assert last == {alice: (NEWEST, "ok"), bob: (None, None)}
