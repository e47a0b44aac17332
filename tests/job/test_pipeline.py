"""Fetch, store and the pool: late plays, gaps, paging, malformed items, local files,
idempotence, dry runs, many users, time budget and overlapping runs."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg

from sync import db
from sync.control import RunControl
from sync.job.pipeline import Context, Options, fair_order, run_sync
from sync.redact import Redactor
from sync.store import outcome
from sync.store import runs as runs_store
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.spotify_fakes import item, window
from tests.support.sync_helpers import (
    CliRunner,
    FakeTime,
    make_client,
    rate_limited,
    server_error,
)

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _stored(conn, user_id="alice") -> list[datetime]:
    return [
        r[0]
        for r in conn.execute(
            "select h.played_at from listening_history h join user_tokens u on u.id = h.user_id "
            "where u.user_id = %s order by 1 desc",
            (user_id,),
        )
    ]


def _run_user(conn, run_id=None):
    return conn.execute(
        "select status, fetched, new_tracks, skipped_items, possible_gap, error_class, error "
        "from sync_run_users where run_id = coalesce(%s, (select max(id) from sync_runs)) "
        "order by user_id",
        (run_id,),
    ).fetchall()


# -- fetch and store ------------------------------------------------------------
def test_late_play_older_than_newest_stored_is_kept(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    first = window(NEWEST, 10)  # every 4 minutes, newest first
    spotify.add_user("alice", "refresh-alice-0001", first)
    assert run("run").code == 0
    late = item(NEWEST - timedelta(minutes=6), 99)  # arrived late, between stored plays
    newer = [item(NEWEST + timedelta(minutes=m), 50 + m) for m in (12, 8, 4)]
    spotify.plays["alice"] = newer + first[:1] + [late] + first[1:]
    result = run("run", "--json")
    assert result.report["users"][0]["new_tracks"] == 4
    stored = _stored(conn)
    assert len(stored) == 14
    assert NEWEST - timedelta(minutes=6) in stored


def test_the_write_is_sent_only_the_plays_not_stored_yet(run, spotify, conn, monkeypatch):
    """Issue 9: the claim reads the user's newest stored end times, so the write carries
    the new plays (and a late one), not the whole window again every hour."""
    add_user(conn, "alice", "refresh-alice-0001")
    first = window(NEWEST, 20)
    spotify.add_user("alice", "refresh-alice-0001", first)
    assert run("run").code == 0
    sent: list[list[datetime]] = []
    save = outcome.save

    def recording_save(conn, key, holder, run_id, result, plays=(), *args, **kwargs):
        sent.append([p.played_at for p in plays])
        return save(conn, key, holder, run_id, result, plays, *args, **kwargs)

    monkeypatch.setattr(outcome, "save", recording_save)
    late = item(NEWEST - timedelta(minutes=6), 99)  # between stored plays
    newer = [item(NEWEST + timedelta(minutes=m), 50 + m) for m in (8, 4)]
    spotify.plays["alice"] = newer + first[:1] + [late] + first[1:]
    result = run("run", "--json")
    assert result.report["users"][0]["fetched"] == 23
    assert result.report["users"][0]["new_tracks"] == 3
    assert sorted(sent[0]) == [NEWEST - timedelta(minutes=6)] + [
        NEWEST + timedelta(minutes=m) for m in (4, 8)
    ]
    assert len(_stored(conn)) == 23


def test_full_window_of_new_plays_reports_a_possible_gap(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST - timedelta(days=1), 1))
    first = run("run", "--json")
    assert first.report["users"][0]["possible_gap"] is False
    spotify.plays["alice"] = window(NEWEST, 50)  # 50 plays, all newer than the stored one
    summary = run.actions()
    result = run("run", "--json")
    assert result.code == 0, result.err  # a gap is a warning, not a failure
    user = result.report["users"][0]
    assert user["possible_gap"] is True
    assert user["new_tracks"] == 50
    assert _run_user(conn)[0][4] is True  # sync_run_users.possible_gap
    with open(summary) as fh:
        assert "Possible gap for user-1" in fh.read()
    assert any(
        line.startswith("::warning title=user-1::possible gap") for line in result.err.splitlines()
    )


def test_no_gap_when_the_window_reaches_a_stored_play(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    plays = window(NEWEST, 50)
    spotify.add_user("alice", "refresh-alice-0001", plays[-1:])
    run("run")
    spotify.plays["alice"] = plays  # 49 new, the oldest one already stored
    result = run("run", "--json")
    assert result.report["users"][0]["possible_gap"] is False
    assert result.report["users"][0]["new_tracks"] == 49


def test_first_sync_of_a_full_window_is_not_a_gap(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 50))
    result = run("run", "--json")
    assert result.report["users"][0]["possible_gap"] is False


def test_next_is_followed_only_while_pages_hold_newer_plays(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", [item(NEWEST - timedelta(hours=30), 1)])
    run("run")  # newest stored: NEWEST - 30 h
    step = timedelta(minutes=15)
    pages = [window(NEWEST - i * 50 * step, 50, start_n=i * 50, step=step) for i in range(5)]
    # page 0 and 1 all newer; page 2 reaches the stored play; page 3 and 4 older
    spotify.pages["alice"] = pages
    spotify.data_requests.clear()
    result = run("run", "--json")
    assert spotify.data_calls("alice") == 3  # pages 0, 1, 2; page 3 never requested
    user = result.report["users"][0]
    assert user["fetched"] == 150
    assert user["new_tracks"] == 149  # every play read is stored, except the one already there


def test_one_request_when_the_first_page_reaches_stored_plays(run, spotify, conn):
    """The usual hourly case: one page, though it has a `next` link (the access token from
    the first run is still valid, so no refresh either)."""
    add_user(conn, "alice", "refresh-alice-0001")
    plays = window(NEWEST, 50)
    spotify.add_user("alice", "refresh-alice-0001", plays[10:])
    run("run")
    spotify.pages["alice"] = [plays, window(NEWEST - timedelta(days=1), 50, start_n=100)]
    spotify.token_requests.clear()
    spotify.data_requests.clear()
    result = run("run", "--json")
    assert result.report["tracks_added"] == 10
    assert spotify.token_requests == []
    assert len(spotify.data_requests) == 1


def test_paging_is_bounded_by_max_tracks(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    step = timedelta(minutes=5)
    spotify.add_user("alice", "refresh-alice-0001")
    spotify.pages["alice"] = [
        window(NEWEST - i * 50 * step, 50, start_n=i * 50, step=step) for i in range(10)
    ]
    result = run("run", "--json", "--max-tracks", "120")
    assert spotify.data_calls("alice") == 3
    user = result.report["users"][0]
    assert (user["fetched"], user["new_tracks"]) == (120, 120)
    assert _stored(conn)[0] == NEWEST  # the newest plays are the ones kept


def test_played_at_with_and_without_milliseconds_is_stored_to_the_millisecond(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    with_ms = datetime(2026, 11, 28, 11, 0, 1, 757000, tzinfo=UTC)
    without_ms = datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC)
    spotify.add_user("alice", "refresh-alice-0001",
                     [item(with_ms, 1), item(without_ms, 2, millis=False)])  # fmt: skip
    assert run("run").code == 0
    assert _stored(conn) == [with_ms, without_ms]


def test_items_without_track_or_time_are_counted_and_skipped(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    good = window(NEWEST, 3)
    bad = [
        {"track": None, "played_at": "2026-11-28T09:00:00Z", "context": None},
        {**item(NEWEST - timedelta(hours=2), 8), "played_at": "garbage"},
        {**item(NEWEST - timedelta(hours=3), 9), "played_at": None},
    ]
    spotify.add_user("alice", "refresh-alice-0001", good[:2] + bad + good[2:])
    result = run("run", "--json")
    assert result.code == 0
    user = result.report["users"][0]
    assert (user["fetched"], user["new_tracks"], user["skipped_items"]) == (6, 3, 3)
    assert _run_user(conn)[0][1:4] == (6, 3, 3)


def test_local_files_are_stored(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    plays = [item(NEWEST, 1, local=True), item(NEWEST - timedelta(minutes=4), 2)]
    spotify.add_user("alice", "refresh-alice-0001", plays)
    result = run("run", "--json")
    assert result.report["tracks_added"] == 2
    row = conn.execute(
        "select t.is_local, t.spotify_id, t.uri, al.name, a.name from listening_history h "
        "join tracks t on t.id = h.track_id left join albums al on al.id = t.album_id "
        "join track_artists ta on ta.track_id = t.id join artists a on a.id = ta.artist_id "
        "where h.played_at = %s",
        (NEWEST,),
    ).fetchone()
    assert row[0] is True and row[1] is None
    assert row[2].startswith("spotify:local:")
    assert row[3:] == ("Local Album", "Local Artist")


def test_rerun_adds_nothing(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 50))
    assert run("run", "--json").report["tracks_added"] == 50
    counts = [
        conn.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("listening_history", "tracks", "albums", "artists", "track_artists")
    ]
    again = run("run", "--json")
    assert again.code == 0
    assert again.report["tracks_added"] == 0
    assert again.report["users"][0]["fetched"] == 50
    assert counts == [
        conn.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("listening_history", "tracks", "albums", "artists", "track_artists")
    ]


def test_dry_run_writes_no_plays_and_no_run_record(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 12))
    result = run("run", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert result.report["users"][0]["new_tracks"] == 12  # what a real run would add
    assert result.report["dry_run"] is True
    for table in ("listening_history", "tracks", "artists", "sync_runs", "sync_run_users"):
        assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
    assert "dry run" in result.err


# -- rate limits through the whole job -------------------------------------------
def test_429_during_a_run_waits_retry_after_and_succeeds(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.data_queue["alice"] = [rate_limited(9)]
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert run.time.sleeps == [9.0]
    assert result.report["tracks_added"] == 5


def test_5xx_during_a_run_backs_off_with_jitter_and_succeeds(monkeypatch, capsys, tmp_path,
                                                              db_url, spotify, conn):  # fmt: skip
    run = CliRunner(monkeypatch, capsys, tmp_path, db_url, jitter=0.0)
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.data_queue["alice"] = [server_error(500), server_error(503)]
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert run.time.sleeps == [0.5, 1.0]  # 1 s and 2 s, jittered down to half
    assert result.report["tracks_added"] == 5


# -- many users ---------------------------------------------------------------
def _context(fake: FakeTime, **options) -> Context:
    control = RunControl(clock=fake.clock, sleep=fake.sleep)
    return Context(client=make_client(fake, control=control), redactor=Redactor(),
                   options=Options(**options), control=control,
                   name=lambda key, user_id: f"user-{key}")  # fmt: skip


def test_slow_or_failing_user_does_not_hold_up_the_others(db_url, conn, spotify):
    for name in ("slow", "bob", "carol", "broken", "denied"):
        add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001", window(NEWEST, 3))
    spotify.data_queue["broken"] = [(200, {"items": 5, "next": None}, {})]  # nonsense answer
    spotify.data_queue["denied"] = [(403, {"error": {"status": 403, "message": "nope"}}, {})]
    others_done = threading.Event()
    finished: list[str] = []

    def hold_slow_user(user):
        if user == "slow":  # blocks one worker until every other user is done
            assert others_done.wait(10), "the other users waited for the slow one"

    def on_result(res):
        finished.append(res.user_id)
        if {"bob", "carol", "broken", "denied"} <= set(finished):
            others_done.set()

    spotify.before_data = hold_slow_user
    fake = FakeTime()
    users = runs_store.candidates(conn)
    result = run_sync(db_url, db.connect, users, _context(fake, concurrency=2),
                      run_id=None, on_result=on_result)  # fmt: skip
    assert finished[-1] == "slow"
    statuses = {u.user_id: u.status for u in result.users}
    assert statuses == {"slow": "ok", "bob": "ok", "carol": "ok",
                        "broken": "failed", "denied": "failed"}  # fmt: skip
    assert result.exit_code == 1
    broken = next(u for u in result.users if u.user_id == "broken")
    assert broken.error_class == "TypeError"
    assert len(_stored(conn, "bob")) == 3 and len(_stored(conn, "slow")) == 3


def test_concurrency_bounds_the_pool(db_url, conn, spotify):
    for n in range(6):
        add_user(conn, f"u{n}", f"refresh-u{n}-0001")
        spotify.add_user(f"u{n}", f"refresh-u{n}-0001", window(NEWEST, 1, start_n=n))
    active: set[str] = set()
    lock = threading.Lock()
    three_busy = threading.Barrier(3, timeout=10)

    def track_workers(user):
        with lock:
            active.add(threading.current_thread().name)
        if user in ("u0", "u1", "u2"):
            three_busy.wait()  # proves three users are in flight at the same time

    spotify.before_data = track_workers
    fake = FakeTime()
    result = run_sync(db_url, db.connect, runs_store.candidates(conn),
                      _context(fake, concurrency=3), run_id=None)  # fmt: skip
    assert [u.status for u in result.users] == ["ok"] * 6
    assert len(active) == 3  # exactly three worker threads were used


def test_time_budget_stops_starting_users_and_skips_the_rest(run, spotify, conn):
    for n in range(1, 5):
        add_user(conn, f"u{n}", f"refresh-u{n}-0001")
        spotify.add_user(f"u{n}", f"refresh-u{n}-0001", window(NEWEST, 2, start_n=n * 10))
    spotify.before_data = lambda user: run.time.advance(400)  # each user takes 400 s
    result = run("run", "--json", "--concurrency", "1", "--time-budget", "10m")
    assert result.code == 0, result.err  # skipped users are not failures
    statuses = [(u["user_id"], u["status"]) for u in result.report["users"]]
    assert statuses == [("user-1", "ok"), ("user-2", "ok"),
                        ("user-3", "skipped"), ("user-4", "skipped")]  # fmt: skip
    assert result.report["users"][2]["error"] == "time budget reached"
    assert [r[0] for r in _run_user(conn)] == ["ok", "ok", "skipped", "skipped"]
    assert spotify.data_calls("u3") == 0

    again = run("run", "--json", "--concurrency", "1", "--time-budget", "10m")
    statuses = [(u["user_id"], u["status"]) for u in again.report["users"]]
    # the users skipped last time go first, so a tight budget starves nobody
    assert statuses == [("user-1", "skipped"), ("user-2", "skipped"),
                        ("user-3", "ok"), ("user-4", "ok")]  # fmt: skip


def test_fair_order_puts_never_and_least_recently_attempted_first(conn):
    keys = [add_user(conn, f"u{n}", f"refresh-u{n}-0001") for n in range(4)]
    last = {keys[0]: NEWEST, keys[1]: NEWEST - timedelta(hours=2), keys[3]: NEWEST}
    users = [replace(u, last_attempt=last.get(u.key)) for u in runs_store.candidates(conn)]
    assert [u.key for u in fair_order(users)] == [keys[2], keys[1], keys[0], keys[3]]


# -- overlapping runs -------------------------------------------------------------
def test_user_locked_by_another_run_is_skipped_without_failing(run, spotify, conn, db_url):
    alice = add_user(conn, "alice", "refresh-alice-0001")
    add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 3, start_n=20))
    with psycopg.connect(db_url, autocommit=True) as other_run:
        assert user_store.claim(other_run, alice, 999, timedelta(minutes=15)).user is not None
        result = run("run", "--json")
        assert result.code == 0, result.err
        users = {u["user_id"]: u for u in result.report["users"]}
        assert users["user-1"]["status"] == "skipped"
        assert users["user-1"]["error"].startswith("another run is syncing this user (until ")
        assert users["user-2"]["status"] == "ok"
        assert "refresh-alice-0001" not in spotify.token_requests  # not touched at all
        assert _stored(conn, "alice") == []
        assert [r[0] for r in _run_user(conn)] == ["skipped", "ok"]
        assert conn.execute("select status from sync_runs").fetchone()[0] == "ok"
        outcome.save(other_run, alice, 999, None, {})  # its final write
    after = run("run", "--json")
    assert after.report["users"][0]["status"] == "ok"
    assert len(_stored(conn, "alice")) == 3
