"""`python -m sync users remove USER [--yes] [--keep-history]`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from sync.commands.users import cmd_remove_user
from sync.config import load_settings
from sync.errors import UserError
from sync.job.transform import parse_items
from sync.store import outcome
from sync.store import plays as plays_store
from sync.store import runs as runs_store
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.spotify_fakes import window

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def with_history(conn: psycopg.Connection, user_id: str, plays: int) -> int:
    key = add_user(conn, user_id, f"refresh-{user_id}-0001", access_token=f"access-{user_id}-01")
    parsed, _ = parse_items(window(NOW - timedelta(days=1), plays))
    run_id = runs_store.open_run(conn, "manual", None, timedelta(minutes=5)).run_id
    result = {"status": "ok", "started_at": NOW.isoformat(), "fetched": plays}
    outcome.save(conn, key, 0, run_id, result, parsed)  # plays, analytics, run record
    item = conn.execute(  # and an imported podcast episode (spoken_plays, sql/009)
        "insert into spoken_items (kind, show, name) values (1, %s, 'E') returning id", (user_id,)
    ).fetchone()[0]
    conn.execute("insert into spoken_plays (played_at, user_id, item_id, ms_played, source) "
                 "values (%s, %s, %s, 600000, 2)", (NOW, key, item))  # fmt: skip
    return key


def rows_of_user(conn: psycopg.Connection, key: int) -> dict[str, int]:
    """Rows keyed by this user in every table with an integer user_id column: history, run
    results and the analytics tables (which a delete trigger clears, not a foreign key)."""
    tables = conn.execute(
        """select c.table_name from information_schema.columns c
             join information_schema.tables t using (table_schema, table_name)
            where c.table_schema = current_schema() and c.column_name = 'user_id'
              and c.data_type = 'integer' and t.table_type = 'BASE TABLE'
            order by 1"""
    ).fetchall()
    return {
        t: conn.execute(f"select count(*) from {t} where user_id = %s", (key,)).fetchone()[0]
        for (t,) in tables
    }


def settings_for(db_url: str):
    return load_settings({"DATABASE_URL": db_url})


def remove(db_url, user, *, yes=False, keep=False, answer=None):
    out = io.StringIO()

    def read_line(prompt: str) -> str:
        out.write(prompt)
        if answer is None:
            raise EOFError
        return answer

    code = cmd_remove_user(settings_for(db_url), user, yes=yes, keep_history=keep,
                           read_line=read_line, out=out)  # fmt: skip
    return code, out.getvalue()


def test_remove_with_yes_deletes_the_user_and_everything_of_theirs(db_url, conn):
    alice = with_history(conn, "alice", 5)
    bob = with_history(conn, "bob", 3)
    before = rows_of_user(conn, alice)
    bob_before = rows_of_user(conn, bob)
    assert {"listening_history", "sync_run_users"} <= set(before)
    assert all(before.values()), before  # every table holds something of alice's
    code, out = remove(db_url, "alice", yes=True)
    assert code == 0
    assert f"Removed user-{alice} and its 5 plays." in out
    assert (
        conn.execute("select count(*) from user_tokens where id = %s", (alice,)).fetchone()[0] == 0
    )
    assert set(rows_of_user(conn, alice).values()) == {0}
    assert rows_of_user(conn, bob) == bob_before  # others untouched


def test_alias_selects_the_user(db_url, conn):
    add_user(conn, "alice")
    bob = add_user(conn, "bob")
    code, _ = remove(db_url, f"user-{bob}", yes=True)
    assert code == 0
    assert [r[0] for r in conn.execute("select user_id from user_tokens")] == ["alice"]


def test_confirmation_yes_removes(db_url, conn):
    alice = with_history(conn, "alice", 2)
    code, out = remove(db_url, "alice", answer="yes")
    assert code == 0
    assert "delete its 2 plays" in out and "Type yes to confirm" in out
    assert plays_store.count_plays(conn, alice) == 0


def test_confirmation_declined_removes_nothing(db_url, conn):
    alice = with_history(conn, "alice", 2)
    code, out = remove(db_url, "alice", answer="n")
    assert code == 1
    assert "Nothing removed." in out
    assert plays_store.count_plays(conn, alice) == 2


def test_no_stdin_aborts_with_exit_2(db_url, conn):
    alice = with_history(conn, "alice", 2)
    with pytest.raises(UserError, match="--yes") as info:
        remove(db_url, "alice", answer=None)
    assert info.value.exit_code == 2
    assert plays_store.count_plays(conn, alice) == 2


def test_keep_history_erases_tokens_keeps_plays_and_stops_syncing(db_url, conn):
    alice = with_history(conn, "alice", 4)
    code, out = remove(db_url, "alice", yes=True, keep=True)
    assert code == 0 and "4 plays kept" in out
    row = conn.execute(
        "select status, refresh_token, access_token, access_token_expires_at, scope"
        " from user_tokens where id = %s",
        (alice,),
    ).fetchone()
    assert row == ("removed", None, None, None, None)
    assert plays_store.count_plays(conn, alice) == 4
    assert runs_store.candidates(conn) == []  # `run` never sees it
    assert remove(db_url, "alice", yes=True, keep=True)[1].startswith("user-")  # idempotent
    # and a later full removal still deletes the kept history
    assert remove(db_url, "alice", yes=True)[0] == 0
    assert plays_store.count_plays(conn, alice) == 0


def test_only_removed_users_may_lack_a_refresh_token(conn):
    key = add_user(conn, "alice")
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update user_tokens set refresh_token = null where id = %s", (key,))


def test_unknown_user_is_a_usage_error(db_url, conn):
    add_user(conn, "alice")
    with pytest.raises(UserError, match="no user 'carol'.*python -m sync users"):
        remove(db_url, "carol", yes=True)


def test_user_being_synced_is_not_removed(db_url, conn):
    alice = with_history(conn, "alice", 2)
    with psycopg.connect(db_url, autocommit=True) as run_conn:
        claim = user_store.claim(run_conn, alice, 999, timedelta(minutes=15))
        assert claim.user is not None  # a run holds this user
        with pytest.raises(UserError, match="sync run is working on this user"):
            remove(db_url, "alice", yes=True)
    assert plays_store.count_plays(conn, alice) == 2


def _cli(db_url: str, *args: str, stdin: str | None = None):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_"))
    }
    env["DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_subprocess_without_stdin_aborts_and_with_yes_removes(db_url, conn):
    with_history(conn, "alice", 2)
    aborted = _cli(db_url, "users", "remove", "alice")
    assert aborted.returncode == 2
    assert "nothing removed; pass --yes" in aborted.stderr
    assert "Traceback" not in aborted.stderr
    piped = _cli(db_url, "users", "remove", "alice", stdin="yes\n")
    assert piped.returncode == 0, piped.stderr
    assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 0
