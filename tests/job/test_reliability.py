"""Faults a real deployment meets while nobody watches (issue 8): overlapping runs with
token rotation, a login or a removal during a run, dropped connections, killed runs,
signals, and users another run holds for hours."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from sync import db
from sync.control import RunControl
from sync.job.pipeline import Context, Options, run_sync
from sync.redact import Redactor
from sync.store import runs as runs_store
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.standin import Standin
from tests.support.sync_helpers import FakeTime, make_client, rate_limited

ROOT = Path(__file__).resolve().parents[2]
NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _context(fake: FakeTime, **options) -> Context:
    control = RunControl(clock=fake.clock, sleep=fake.sleep)
    return Context(
        client=make_client(fake, control=control),
        redactor=Redactor(),
        options=Options(**options),
        control=control,
        name=lambda key, user_id: f"user-{key}",
    )


def _user(conn, key: int) -> tuple:
    return conn.execute(
        "select refresh_token, status, lease_run from user_tokens where id = %s", (key,)
    ).fetchone()


# -- 1. state read under the user's claim; token writes compare-and-set -------------------
def test_overlapping_runs_with_rotation_never_lock_the_user_out(run, spotify, conn, db_url):
    """Run B listed the users before run A synced X and rotated X's refresh token; when B
    reaches X it reads the token A stored, instead of refreshing with the dead one."""
    x = add_user(conn, "xavier", "refresh-x-0001")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 5))
    spotify.rotate.add("xavier")
    run_b_users = runs_store.candidates(conn)  # run B starts and lists its users
    assert run("run").code == 0  # run A syncs xavier; Spotify rotates the token
    rotated = _user(conn, x)[0]
    assert rotated != "refresh-x-0001"
    conn.execute("update user_tokens set access_token_expires_at = now()")  # B must refresh
    spotify.plays["xavier"] = window(NEWEST + timedelta(minutes=30), 3, start_n=40)
    result = run_sync(db_url, db.connect, run_b_users, _context(FakeTime()), run_id=None)
    assert [u.status for u in result.users] == ["ok"], result.users[0].error
    assert _user(conn, x)[1] == "active"
    assert "refresh-x-0001" not in spotify.token_requests[1:]  # B never sent the dead token
    assert spotify.token_requests[-1] == rotated


def test_refused_old_token_is_not_a_reason_for_needs_reauth(run, spotify, conn):
    """Another run rotates the token between this run's claim and its refresh: Spotify
    refuses the token this run read; the stored one is tried and the user stays active."""
    x = add_user(conn, "xavier", "refresh-x-0001")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 4))

    def other_run_rotates(sent: str) -> None:
        if sent == "refresh-x-0001":
            del spotify.refresh_tokens["refresh-x-0001"]
            spotify.refresh_tokens["refresh-x-0002"] = "xavier"
            conn.execute("update user_tokens set refresh_token = 'refresh-x-0002'")

    spotify.before_token = other_run_rotates
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert result.report["users"][0]["status"] == "ok"
    assert spotify.token_requests == ["refresh-x-0001", "refresh-x-0002"]
    assert _user(conn, x)[:2] == ("refresh-x-0002", "active")


def test_a_login_during_the_run_wins_over_the_runs_rotation(run, spotify, conn):
    x = add_user(conn, "xavier", "refresh-x-0001")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 4))
    spotify.rotate.add("xavier")

    def login_meanwhile(sent: str) -> None:  # the owner signs in again right now
        conn.execute("update user_tokens set refresh_token = 'refresh-from-login'")

    spotify.before_token = login_meanwhile
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert result.report["users"][0]["new_tracks"] == 4  # the fresh access token still served
    assert _user(conn, x) == ("refresh-from-login", "active", None)


def test_a_user_removed_after_the_run_started_is_skipped_and_keeps_no_tokens(spotify, conn, db_url):
    x = add_user(conn, "xavier", "refresh-x-0001")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 4))
    users = runs_store.candidates(conn)  # the run starts
    conn.execute("update user_tokens set status = 'removed', refresh_token = null")  # keep-history
    result = run_sync(db_url, db.connect, users, _context(FakeTime()), run_id=None)
    assert [(u.status, u.error) for u in result.users] == [
        ("skipped", "the user was removed during the run")
    ]
    assert spotify.token_requests == []
    assert _user(conn, x) == (None, "removed", None)


# -- 2. the time budget bounds the whole run ------------------------------------------------
def test_a_long_retry_after_ends_the_run_within_its_budget(run, spotify, conn):
    for name in ("ann", "ben", "cat"):
        add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001", window(NEWEST, 2, start_n=len(name)))
    spotify.data_queue["ann"] = [rate_limited(3600)]
    result = run("run", "--json", "--concurrency", "1", "--time-budget", "20s")
    assert result.code == 1
    assert run.time.now - 1000.0 < 20  # the fake clock: nobody waited out the hour
    report = result.report
    assert [u["status"] for u in report["users"]] == ["skipped", "skipped", "skipped"]
    assert all("Retry-After 3600" in u["error"] for u in report["users"])
    assert report["stopped"].startswith("Spotify rate-limits this app (429, Retry-After 3600")
    assert "run stopped early: Spotify rate-limits this app" in result.err
    assert conn.execute("select count(*) from listening_history").fetchone() == (0,)
    assert conn.execute(
        "select count(*) from user_tokens where lease_run is not null"
    ).fetchone() == (0,)


# -- 4. database trouble ------------------------------------------------------------------
def _drop_job_connections(conn) -> None:
    """What a failover or a pooler restart does: every other session of the database ends."""
    conn.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity "
        "where datname = current_database() and pid <> pg_backend_pid()"
    )


def test_dropped_connections_fail_no_user_and_the_run_is_recorded(run, spotify, conn):
    for name in ("ann", "ben", "cat"):
        add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001", window(NEWEST, 3, start_n=len(name)))
    dropped = []

    def drop_once(user):
        if user == "ben" and not dropped:
            dropped.append(user)
            _drop_job_connections(conn)

    spotify.before_data = drop_once
    result = run("run", "--json", "--concurrency", "1")
    assert dropped == ["ben"]
    assert result.code == 0, result.err
    assert [u["status"] for u in result.report["users"]] == ["ok", "ok", "ok"]
    assert "database connection lost; retrying" in result.err
    row = conn.execute("select status, users_synced, tracks_added from sync_runs").fetchone()
    assert row == ("ok", 3, 9)  # finished on a fresh connection
    assert (
        conn.execute("select count(*) from user_tokens where lease_run is not null").fetchone()[0]
        == 0
    )


def test_a_rotated_token_survives_a_connection_lost_before_its_save(run, spotify, conn):
    x = add_user(conn, "xavier", "refresh-x-0001")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 4))
    spotify.rotate.add("xavier")
    dropped = []

    def drop_while_spotify_answers(sent: str) -> None:
        if not dropped:
            dropped.append(sent)
            _drop_job_connections(conn)  # the save that follows finds its connection gone

    spotify.before_token = drop_while_spotify_answers
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert "saving it on a new one" in result.err
    assert result.report["users"][0]["new_tracks"] == 4
    stored = _user(conn, x)
    assert stored[1] == "active" and stored[0] in spotify.refresh_tokens  # Spotify's live one
    assert spotify.token_requests == ["refresh-x-0001"]  # the dead token was never sent again


def test_a_user_held_for_hours_by_another_run_is_a_warning_with_exit_1(run, spotify, conn):
    x = add_user(conn, "xavier", "refresh-x-0001")
    conn.execute("update user_tokens set created_at = now() - interval '5 hours'")
    spotify.add_user("xavier", "refresh-x-0001", window(NEWEST, 2))
    user_store.claim(conn, x, 4242, timedelta(hours=1))  # a stuck run somewhere
    result = run("run", "--json")
    assert result.code == 1
    (user,) = result.report["users"]
    assert user["status"] == "skipped"
    assert any("another run keeps holding this user" in w for w in user["warnings"])
    assert "::error" not in result.err  # not in Actions: no workflow commands


def test_a_table_lock_held_by_an_import_is_a_bounded_wait(run, spotify, conn, db_url, monkeypatch):
    from sync.job import pipeline

    monkeypatch.setattr(pipeline, "LOCK_TIMEOUT", "200ms")
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))
    with psycopg.connect(db_url) as importer:  # a bulk import's transaction, still open
        importer.execute("lock table listening_history in access exclusive mode")
        result = run("run", "--json")
    assert result.code == 0, result.err
    (user,) = result.report["users"]
    assert user["status"] == "skipped"
    assert user["error"].startswith("the database is busy (a lock held longer than 200ms")
    assert run("run", "--json").report["users"][0]["new_tracks"] == 3  # next run continues


def test_a_user_an_import_holds_is_skipped_without_waiting(run, spotify, conn, db_url):
    key = add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))
    with psycopg.connect(db_url) as importer:  # what `import` does in its transaction
        user_store.lock_for_change(importer, key, "import")
        result = run("run", "--json")
    assert result.code == 0, result.err
    (user,) = result.report["users"]
    assert (user["status"], user["error"]) == (
        "skipped", "an import or removal is working on this user")  # fmt: skip
    assert spotify.token_requests == []


def test_run_refuses_a_transaction_pooler_url(run):
    run.env(DATABASE_URL="postgresql://postgres.abc:pw@aws-0-eu.pooler.supabase.com:6543/postgres")
    result = run("run")
    assert result.code == 2
    assert "port 6543, Supabase's transaction pooler" in result.err
    assert "pw" not in result.err.replace("pooler", "")


def test_run_accepts_the_alias_logs_show(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    bob = add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 2))
    result = run("run", "--json", "--user", f"user-{bob}")
    assert result.code == 0, result.err
    assert [u["user_id"] for u in result.report["users"]] == [f"user-{bob}"]
    unknown = run("run", "--user", "user-99")
    assert unknown.code == 2 and "no active user user-99" in unknown.err


def test_a_run_without_users_says_what_to_do_and_warns_in_actions(run, conn):
    summary = run.actions()
    result = run("run")
    assert result.code == 0
    assert "no users to sync yet: sign in with python -m sync login" in result.err
    assert "::warning title=No users::" in result.err
    assert "No users in `user_tokens` yet, so nothing is synced" in Path(summary).read_text()


# -- 3. killed runs and signals -------------------------------------------------------------
def test_a_killed_run_is_closed_by_the_next_one(run, spotify, conn):
    conn.execute(
        "insert into sync_runs (status, started_at, alive_until) "
        "values ('running', now() - interval '2 hours', now() - interval '1 hour')"
    )
    summary = run.actions()
    result = run("run")
    assert result.code == 0, result.err
    rows = conn.execute("select id, status from sync_runs order by id").fetchall()
    assert rows == [(1, "killed"), (2, "ok")]
    assert "run 1 (started" in result.err and "closed as killed" in result.err
    assert "Run 1 never finished" in Path(summary).read_text()


def test_a_live_run_is_not_closed(run, spotify, conn):
    conn.execute(
        "insert into sync_runs (status, alive_until) values ('running', now() + interval '5 min')"
    )
    assert run("run").code == 0
    assert conn.execute("select status from sync_runs where id = 1").fetchone()[0] == "running"


def _popen(db_url: str, standin: Standin, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        env=standin.cli_env(db_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _three_users(conn, standin: Standin) -> None:
    for name in ("ann", "ben", "cat"):
        add_user(conn, name, f"refresh-{name}-0001")
        standin.state.refresh_tokens[f"refresh-{name}-0001"] = name
        standin.state.plays[name] = window(NEWEST, 3, start_n=len(name) * 7)


def test_sigterm_lets_the_user_in_flight_finish_and_records_partial_totals(db_url, conn):
    with Standin() as standin:
        _three_users(conn, standin)
        standin.state.hold_user = "ben"  # ann done, ben in flight, cat not started
        proc = _popen(db_url, standin, "run", "--json", "--concurrency", "1")
        assert standin.state.held.wait(60), "ben's request never arrived"
        proc.send_signal(signal.SIGTERM)
        standin.state.release.set()  # Spotify answers ben's request after all
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGTERM: starting no more users; finishing 1 user in progress" in err
    report = json.loads(out)
    assert [(u["user_id"], u["status"]) for u in report["users"]] == [
        ("user-1", "ok"), ("user-2", "ok"), ("user-3", "skipped")]  # fmt: skip
    assert report["users"][2]["error"] == "interrupted (SIGTERM)"
    row = conn.execute(
        "select status, users_total, users_synced, users_skipped, tracks_added, finished_at "
        "is not null from sync_runs"
    ).fetchone()
    assert row == ("interrupted", 3, 2, 1, 6, True)


def test_a_second_signal_exits_at_once_and_still_leaves_a_true_record(db_url, conn):
    with Standin() as standin:
        _three_users(conn, standin)
        standin.state.hold_user = "ben"
        proc = _popen(db_url, standin, "run", "--concurrency", "1")
        assert standin.state.held.wait(60), "ben's request never arrived"
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)  # ben's request is still hanging: exit anyway
        finally:
            standin.state.release.set()
    assert proc.returncode == 130
    status = conn.execute("select status, finished_at is not null from sync_runs").fetchone()
    assert status == ("interrupted", True)
    ann = conn.execute("select count(*) from listening_history where user_id = 1").fetchone()[0]
    assert ann == 3  # what committed before the signal stays


def test_workers_leave_stop_signals_to_the_main_thread(spotify, conn, db_url):
    """Else a signal can land on a worker, and the main thread sleeps through it."""
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 1))
    masks = []
    spotify.before_data = lambda user: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    result = run_sync(db_url, db.connect, runs_store.candidates(conn), _context(FakeTime()),
                      run_id=None)  # fmt: skip
    assert [u.status for u in result.users] == ["ok"]
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= masks[0]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # main thread


def test_a_second_signal_waits_for_a_token_refresh_to_be_saved():
    """The hard exit is deferred while a refresh (which may rotate the token) is unsaved."""
    control = RunControl()
    exits: list[str] = []
    with control.critical():
        assert control.exit_when_safe(lambda: exits.append("exit"))
        assert exits == []  # not while the rotated token is unsaved
    assert exits == ["exit"]
    assert not control.exit_when_safe(lambda: exits.append("again"))
    assert exits == ["exit", "again"]


def test_embedded_server_forgets_commands_that_were_killed(tmp_path):
    handles = tmp_path / ".handle_pids.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    handles.write_text(json.dumps([os.getpid(), dead.pid]))
    db._forget_dead_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]


# -- 7. smaller holes ---------------------------------------------------------------------
def test_no_gap_when_the_second_page_reaches_the_stored_plays(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    step = timedelta(minutes=3)
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5, step=step))
    assert run("run").code == 0
    newer = window(NEWEST + 60 * step, 60, start_n=100, step=step)  # 60 new plays
    spotify.pages["alice"] = [newer[:50], newer[50:] + window(NEWEST, 5, step=step)]
    report = run("run", "--json").report
    assert report["users"][0]["new_tracks"] == 60
    assert report["users"][0]["possible_gap"] is False
    assert report["users"][0]["warnings"] == []


def test_a_user_refused_with_403_fails_once_then_is_a_warning(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    refused = (403, {"error": {"status": 403, "message": "User not registered"}}, {})
    spotify.data_queue["alice"] = [refused, refused]
    first = run("run", "--json")
    assert (first.code, first.report["users"][0]["status"]) == (1, "failed")
    second = run("run", "--json")
    assert (second.code, second.report["users"][0]["status"]) == (0, "refused")
    assert second.report["users"][0]["warnings"]
    third = run("run", "--json")  # added to User Management meanwhile
    assert (third.code, third.report["users"][0]["status"]) == (0, "ok")


def test_the_warning_of_a_known_refusal_is_redacted_like_its_error(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    message = "User not registered (refresh-alice-0001)"  # a secret in Spotify's own words
    refused = (403, {"error": {"status": 403, "message": message}}, {})
    spotify.data_queue["alice"] = [refused, refused]
    run("run")
    second = run("run", "--json")
    user = second.report["users"][0]
    assert user["status"] == "refused" and user["warnings"]
    assert "refresh-alice-0001" not in second.out + second.err
    assert "User not registered (***)" in " ".join(user["warnings"])
    stored = conn.execute("select error, warnings::text from sync_run_users").fetchall()
    assert stored and "refresh-alice-0001" not in repr(stored)


def test_candidates_carry_no_tokens():
    fields = set(runs_store.Candidate.__dataclass_fields__)
    assert not {"refresh_token", "access_token"} & fields
    user = user_store.User(1, "x", "refresh-secret", "access-secret", None, None, NEWEST, "a", None)
    assert "secret" not in repr(user) and "secret" not in repr(replace(user, scope="s"))


def test_a_known_refusal_is_decided_from_the_typed_error_not_its_class_name():
    from sync.job.outcomes import describe
    from sync.spotify.client import Forbidden

    class NotAllowListed(Forbidden):  # a renamed or narrower 403 is still the same refusal
        pass

    assert describe(NotAllowListed("User not registered"))[0] == Forbidden.recorded_as
    assert describe(ValueError("x"))[0] == "ValueError"
