"""Faults together, not one by one: many simulated hours of syncing with token rotation,
5xx and 429 answers, dropped database connections, overlapping runs and runs that died
holding users, then a check that nothing was lost, nothing stored twice, nobody locked
out, and the analytics equal a rebuild. Deterministic (seeded); no real waiting."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg

from sync import db
from sync.commands.run import close_run
from sync.control import RunControl
from sync.job.pipeline import Context, Options, fair_order, run_sync
from sync.redact import Redactor
from sync.statuses import RunStatus
from sync.store import runs as runs_store
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.analytics import rebuilt_snapshot, snapshot
from tests.support.spotify_fakes import item
from tests.support.sync_helpers import FakeTime, make_client, rate_limited, server_error

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
USERS = 6
HOURS = 30


def _run(db_url: str, fake: FakeTime, conn, label: str) -> list:
    """One `sync run` as the command does it: run record, fair order, the pool."""
    control = RunControl(clock=fake.clock, sleep=fake.sleep)
    ctx = Context(client=make_client(fake, control=control), redactor=Redactor(),
                  options=Options(concurrency=3), control=control,
                  name=lambda key, user_id: f"user-{key}")  # fmt: skip
    own = psycopg.connect(db_url, autocommit=True)
    opened = runs_store.open_run(own, label, None, timedelta(minutes=30))
    users = fair_order(runs_store.candidates(own))
    result = run_sync(db_url, db.connect, users, ctx, run_id=opened.run_id)
    status = RunStatus.FAILED if result.exit_code else RunStatus.OK
    own = close_run(db_url, own, opened.run_id, status, result)  # reconnects if dropped
    assert own is not None
    own.close()
    return result.users


def test_many_hours_of_mixed_faults_lose_nothing(db_url, conn, spotify):
    rng = random.Random(20261129)
    names = [f"user{n}" for n in range(USERS)]
    keys = {}
    truth: dict[str, list[dict]] = {name: [] for name in names}  # every play, newest first
    for name in names:
        keys[name] = add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001")
        spotify.rotate.add(name)  # every refresh hands out a new refresh token
    fake = FakeTime()
    dropped: list[str] = []
    faults = {"5xx": 0, "429": 0, "drop": 0, "overlap": 0, "dead_run": 0, "expired": 0}

    for hour in range(HOURS):
        for n, name in enumerate(names):  # up to 25 new plays an hour (the window holds 50)
            count = rng.randint(0, 25)
            base = START + timedelta(hours=hour)
            seconds = rng.sample(range(1, 3600), count)  # distinct end times
            new = [item(base + timedelta(seconds=s), hour * 100 + i + n * 7)
                   for i, s in enumerate(seconds)]  # fmt: skip
            truth[name] = sorted(truth[name] + new, key=lambda i: i["played_at"], reverse=True)
            spotify.plays[name] = truth[name][:50]
        if rng.random() < 0.5:  # access tokens ran out: every user refreshes (and rotates)
            conn.execute("update user_tokens set access_token_expires_at = now()")
            faults["expired"] += 1
        victim = rng.choice(names)
        if rng.random() < 0.4:
            spotify.data_queue.setdefault(victim, []).append(server_error(503))
            faults["5xx"] += 1
        if rng.random() < 0.3:
            spotify.data_queue.setdefault(rng.choice(names), []).append(rate_limited(2))
            faults["429"] += 1
        drop_for = rng.choice(names) if rng.random() < 0.3 else None
        if drop_for:
            faults["drop"] += 1

        def maybe_drop(user, drop_for=drop_for):
            if user == drop_for and user not in dropped:
                dropped.append(user)
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid()"
                )

        spotify.before_data = maybe_drop
        if rng.random() < 0.2:  # a run died an hour ago holding a user: its claim expired
            held = keys[rng.choice(names)]
            user_store.claim(conn, held, 10_000 + hour, timedelta(minutes=15))
            conn.execute(
                "update user_tokens set lease_until = now() - interval '1 minute' where id = %s",
                (held,),
            )
            conn.execute(
                "insert into sync_runs (status, alive_until) "
                "values ('running', now() - interval '1 minute')"
            )
            faults["dead_run"] += 1
        if rng.random() < 0.3:  # a manual run overlaps the scheduled one
            faults["overlap"] += 1
            other: list = []
            thread = threading.Thread(
                target=lambda found=other: found.extend(_run(db_url, FakeTime(), conn, "manual"))
            )
            thread.start()
            results = _run(db_url, fake, conn, "schedule")
            thread.join(120)
            assert not thread.is_alive()
            results += other
        else:
            results = _run(db_url, fake, conn, "schedule")
        dropped.clear()
        spotify.before_data = None
        bad = [(r.user_id, r.status, r.error) for r in results
               if r.status not in ("ok", "skipped")]  # fmt: skip
        assert not [b for b in bad if b[1] == "needs_reauth"], f"hour {hour}: {bad}"

    final = _run(db_url, fake, conn, "schedule")  # a quiet hour to finish
    assert sorted(r.status for r in final) == ["ok"] * USERS
    for name in names:
        stored = conn.execute(
            "select count(*), count(distinct played_at) from listening_history where user_id = %s",
            (keys[name],),
        ).fetchone()
        assert stored == (len(truth[name]), len(truth[name])), name
    assert conn.execute("select count(*) from user_tokens where status <> 'active'").fetchone() == (
        0,
    )
    assert (
        conn.execute("select count(*) from user_tokens where lease_run is not null").fetchone()[0]
        == 0
    )
    running = conn.execute("select count(*) from sync_runs where status = 'running'").fetchone()
    assert running == (0,)  # every dead run was closed as killed
    assert snapshot(conn, list(keys.values())) == rebuilt_snapshot(conn, list(keys.values()))
    assert all(faults.values()), faults  # every kind of fault happened at least once
