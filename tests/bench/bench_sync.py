"""Benchmark of the whole `python -m sync run`: wall time, requests per user, bytes per play.

Runs the real command as a subprocess against the local stand-in Spotify (answering
after --latency seconds) and a real Postgres (--database-url or TEST_DATABASE_URL,
else an embedded server), then prints figures. Nothing here asserts: read the output.

    python -m tests.bench.bench_sync                    # 100 users x 50 plays, 3 cold runs
    python -m tests.bench.bench_sync --history-rows 0   # skip the 1,000,000-row storage part
    python -m tests.bench.bench_sync --scaling 100,300,1000 --concurrency 16   # scaling table
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.conftest import add_user
from tests.support.pg import PgCluster
from tests.support.spotify_fakes import window
from tests.support.standin import Standin, StandinState

ROOT = Path(__file__).resolve().parents[2]
BUDGET_BYTES_PER_PLAY = 150


@dataclass
class RunFigures:
    label: str
    wall_s: float
    inner_s: float  # the run's own duration_s (after start-up, connect and migrate check)
    cpu_s: float  # user + system CPU time of the sync process
    exit_code: int
    requests: Counter
    users: int
    tracks_added: int
    statuses: Counter
    standin_cpu_s: float = 0.0  # CPU of this process meanwhile: the stand-in Spotify's threads
    postgres_cpu_s: float | None = None  # the server's processes, when it runs on this machine

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_sync", description=__doc__)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--plays", type=int, default=50, help="plays in each user's window (<= 50)")
    p.add_argument("--latency", type=float, default=0.05, help="stand-in answer delay, seconds")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3, help="cold runs, each on a fresh database")
    p.add_argument(
        "--next-link",
        action="store_true",
        help="give full pages a `next` link, as real Spotify does (leads to an empty page)",
    )
    p.add_argument(
        "--history-rows",
        type=int,
        default=1_000_000,
        help="rows for the synthetic storage measurement (0 skips it)",
    )
    p.add_argument("--database-url", help="admin URL of a Postgres to create databases on")
    p.add_argument(
        "--scaling",
        metavar="N,N,...",
        help="instead of the above: for each user count a first sync and a steady-state "
        "sync (valid tokens, 10 new plays per user), each against its ideal",
    )
    return p.parse_args(argv)


def cli_env(db_url: str, standin: Standin) -> dict[str, str]:
    return standin.cli_env(db_url)


def seed(db_url: str, state: StandinState, users: int, plays: int) -> None:
    """Users as a web app's login stores them (id + refresh token), each with a full window."""
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n in range(users):
            user, refresh = f"bench-user-{n:04d}", f"bench-refresh-{n:04d}-0123456789"
            add_user(conn, user, refresh)
            state.refresh_tokens[refresh] = user
            # overlapping catalogues: neighbours share half their tracks
            state.plays[user] = window(newest - timedelta(seconds=n), plays, start_n=n * plays // 2)


def postgres_cpu_seconds(db_url: str) -> float | None:
    """CPU used so far by the Postgres server's processes, living and exited, or None.

    The postmaster reaps every backend, so its children's times include the backends of
    runs that have ended; living children (the next run's, background workers) add their
    own. Only readable when the server runs on this machine as a process we may inspect.
    """
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> list[str] | None:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on

    with psycopg.connect(db_url, autocommit=True) as conn:
        backend = stat(conn.execute("select pg_backend_pid()").fetchone()[0])
    if backend is None:
        return None
    postmaster = int(backend[1])  # this probe's own backend costs the same every time
    fields = stat(postmaster)
    if fields is None:
        return None
    total = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != postmaster:
            child = stat(int(entry.name))
            if child is not None and int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
    return total / tick


def run_once(label: str, db_url: str, standin: Standin, concurrency: int) -> RunFigures:
    with standin.state.lock:
        standin.state.requests.clear()
    pg_before = postgres_cpu_seconds(db_url)
    cmd = [sys.executable, "-m", "sync", "run", "--concurrency", str(concurrency), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=cli_env(db_url, standin),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    pg_after = postgres_cpu_seconds(db_url)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    standin_cpu = (own_after.ru_utime - own_before.ru_utime) + (
        own_after.ru_stime - own_before.ru_stime
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"{label}: no JSON from the run (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    with standin.state.lock:
        requests = Counter(
            "token" if path == "/api/token" else "recently-played"
            for _method, path in standin.state.requests
        )
    return RunFigures(
        label=label,
        wall_s=wall,
        inner_s=report["duration_s"],
        cpu_s=cpu,
        exit_code=proc.returncode,
        requests=requests,
        users=report["users_total"],
        tracks_added=report["tracks_added"],
        statuses=Counter(u["status"] for u in report["users"]),
        standin_cpu_s=standin_cpu,
        postgres_cpu_s=None if pg_before is None or pg_after is None else pg_after - pg_before,
    )


def startup_seconds(db_url: str, standin: Standin) -> float:
    """Interpreter start and imports of the CLI, the floor under every run."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sync", "--help"],
        cwd=ROOT,
        env=cli_env(db_url, standin),
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def print_run(fig: RunFigures, latency: float, concurrency: int) -> None:
    ideal = fig.total_requests * latency / concurrency
    target = 1.3 * ideal + 1.5
    per_user = fig.total_requests / fig.users if fig.users else 0.0
    verdict = "within" if fig.wall_s <= target else "MISSES"
    print(
        f"  {fig.label:<11} wall {fig.wall_s:6.2f} s (in-run {fig.inner_s:5.2f} s, "
        f"CPU {fig.cpu_s:4.2f} s) | "
        f"{fig.total_requests} requests ({dict(fig.requests)}), {per_user:.2f}/user | "
        f"ideal {ideal:.2f} s, target {target:.2f} s: {verdict} ({fig.wall_s / target:.0%}) | "
        f"exit {fig.exit_code}, {dict(fig.statuses)}, {fig.tracks_added} plays added"
    )


def add_new_plays(state: StandinState, count: int = 10) -> None:
    """`count` plays newer than any stored one for every user (Spotify keeps the newest 50)."""
    newest = datetime.now(UTC).replace(microsecond=0)
    with state.lock:
        for n, (user, items) in enumerate(sorted(state.plays.items())):
            fresh = window(newest - timedelta(seconds=n), count, start_n=10_000_000 + n * count)
            state.plays[user] = (fresh + items)[:50]


def scaling(cluster: PgCluster, args: argparse.Namespace) -> None:
    """First sync and steady state for each user count, against ideal and goal."""
    goals = {"first sync": (1.3, 1.5), "steady state": (1.5, 1.5)}
    print(
        f"scaling: {args.plays} plays per user, latency {args.latency * 1000:.0f} ms, "
        f"--concurrency {args.concurrency}; goal: first sync within 1.3 x ideal + 1.5 s, "
        "steady state (valid tokens, 10 new plays per user) within 1.5 x ideal + 1.5 s"
    )
    print(
        "  users | run          | requests | plays added | ideal s | goal s | wall s | in-run s | "
        "CPU s | stand-in CPU s | Postgres CPU s | met | load"
    )
    for users in (int(n) for n in args.scaling.split(",")):
        db_url = cluster.create()
        try:
            with Standin(StandinState(latency=args.latency)) as standin:
                seed(db_url, standin.state, users, args.plays)
                first = run_once("first sync", db_url, standin, args.concurrency)
                add_new_plays(standin.state)
                steady = run_once("steady state", db_url, standin, args.concurrency)
        finally:
            cluster.drop(db_url)
        for fig in (first, steady):
            factor, extra = goals[fig.label]
            ideal = fig.total_requests * args.latency / args.concurrency
            goal = factor * ideal + extra
            met = "yes" if fig.wall_s <= goal and fig.exit_code == 0 else "NO"
            synced = fig.statuses.get("ok", 0)
            note = "" if synced == users else f" ({synced} of {users} synced)"
            pg_cpu = "-" if fig.postgres_cpu_s is None else f"{fig.postgres_cpu_s:.2f}"
            print(
                f"  {users:5d} | {fig.label:<12} | {fig.total_requests:8d} | "
                f"{fig.tracks_added:11d} | {ideal:7.2f} | {goal:6.2f} | {fig.wall_s:6.2f} | "
                f"{fig.inner_s:8.2f} | {fig.cpu_s:5.2f} | {fig.standin_cpu_s:14.2f} | "
                f"{pg_cpu:>14} | "
                f"{met:<3} | {os.getloadavg()[0]:.2f}{note}"
            )


# -- storage ----------------------------------------------------------------
def history_size(conn: psycopg.Connection) -> dict:
    """Heap and index bytes of listening_history after VACUUM, per stored play."""
    conn.execute("vacuum (analyze) listening_history")
    heap, indexes, total, rows = conn.execute(
        """select pg_relation_size('listening_history'), pg_indexes_size('listening_history'),
                  pg_total_relation_size('listening_history'), count(*)
             from listening_history"""
    ).fetchone()
    per_index = conn.execute(
        """select indexrelid::regclass::text, pg_relation_size(indexrelid)
             from pg_index where indrelid = 'listening_history'::regclass order by 1"""
    ).fetchall()
    return {
        "rows": rows,
        "heap": heap,
        "indexes": indexes,
        "total": total,
        "per_index": per_index,
        "per_play": (heap + indexes) / rows if rows else float("nan"),
    }


def dimension_size(conn: psycopg.Connection) -> tuple[int, int]:
    """Bytes of tracks/albums/artists/track_artists with indexes, and the distinct tracks."""
    tables = ("tracks", "albums", "artists", "track_artists")
    conn.execute("vacuum (analyze) " + ", ".join(tables))
    total = sum(
        conn.execute("select pg_total_relation_size(%s::regclass)", (t,)).fetchone()[0]
        for t in tables
    )
    return total, conn.execute("select count(*) from tracks").fetchone()[0]


def print_size(label: str, size: dict) -> None:
    rows = size["rows"]
    print(
        f"  {label}: {rows:,} plays, heap {size['heap']:,} B ({size['heap'] / rows:.1f}/play) + "
        f"indexes {size['indexes']:,} B ({size['indexes'] / rows:.1f}/play) = "
        f"{size['per_play']:.1f} bytes/play (budget {BUDGET_BYTES_PER_PLAY}); "
        f"with FSM/VM/TOAST {size['total'] / rows:.1f}"
    )
    for name, nbytes in size["per_index"]:
        print(f"      index {name}: {nbytes:,} B ({nbytes / rows:.1f}/play)")


def synthetic_history(db_url: str, rows: int, users: int, batch: int) -> dict:
    """Fill listening_history with `rows` plays the way hourly syncs do, then measure.

    Plays go in hour by hour, each user's new plays of that hour as one batch, so the
    index sees the same insertion pattern as real syncs (users=1: one person's fork).
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("truncate listening_history")
        conn.execute(
            """insert into user_tokens (user_id, refresh_token)
               select 'synthetic-' || g, 'synthetic-refresh-' || g
                 from generate_series(1, %s) g on conflict do nothing""",
            (users,),
        )
        keys = [
            r[0] for r in conn.execute("select id from user_tokens order by id limit %s", (users,))
        ]
        conn.execute(
            """insert into tracks (uri, name)
               select 'spotify:track:synthetic' || g, 'Synthetic ' || g
                 from generate_series(1, 20000) g on conflict do nothing"""
        )
        lo, hi = conn.execute(
            "select min(id), max(id) from tracks where uri like 'spotify:track:synthetic%'"
        ).fetchone()
        started = time.perf_counter()
        conn.execute(
            """insert into listening_history (user_id, played_at, track_id, source)
               select (%(keys)s::int[])[1 + (g / %(batch)s) %% %(users)s],
                      timestamptz '2021-01-01 00:00:00.123+00'
                        + (g / (%(batch)s * %(users)s)) * interval '1 hour'
                        + (g %% %(batch)s) * interval '3 minutes 1.5 seconds',
                      %(lo)s + (g::bigint * 7919) %% (%(hi)s - %(lo)s + 1),
                      0
                 from generate_series(0, %(rows)s - 1) g
                order by g""",
            {"keys": keys, "batch": batch, "users": users, "lo": lo, "hi": hi, "rows": rows},
        )
        elapsed = time.perf_counter() - started
        size = history_size(conn)
        size["insert_s"] = elapsed
        return size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    where = "TEST_DATABASE_URL server" if os.environ.get("TEST_DATABASE_URL") else "embedded"
    cluster = PgCluster()
    try:
        cluster.build_template()
        if args.scaling:
            scaling(cluster, args)
            return 0
        print(
            f"sync run benchmark: {args.users} users x {args.plays} plays, latency "
            f"{args.latency * 1000:.0f} ms, --concurrency {args.concurrency}, Postgres: {where}, "
            f"next links: {'yes' if args.next_link else 'no'}; {os.cpu_count()} CPUs, load "
            f"average {os.getloadavg()[0]:.2f} (other work on the machine slows every figure)"
        )
        state_kw = {"latency": args.latency, "next_link": args.next_link}
        colds: list[RunFigures] = []
        warm: RunFigures | None = None
        size_small = None
        dims = (0, 0)
        for attempt in range(args.repeat):
            db_url = cluster.create()
            try:
                with Standin(StandinState(**state_kw)) as standin:
                    seed(db_url, standin.state, args.users, args.plays)
                    if attempt == 0:
                        print(f"  start-up of `python -m sync --help`: "
                              f"{startup_seconds(db_url, standin):.2f} s")  # fmt: skip
                    cold = run_once(f"cold #{attempt + 1}", db_url, standin, args.concurrency)
                    colds.append(cold)
                    print_run(cold, args.latency, args.concurrency)
                    if attempt == 0:
                        warm = run_once("warm rerun", db_url, standin, args.concurrency)
                        print_run(warm, args.latency, args.concurrency)
                        with psycopg.connect(db_url, autocommit=True) as conn:
                            size_small = history_size(conn)
                            dims = dimension_size(conn)
            finally:
                cluster.drop(db_url)
        walls = [c.wall_s for c in colds]
        ideal = colds[0].total_requests * args.latency / args.concurrency
        print(
            f"  cold wall time over {len(walls)} runs: median {statistics.median(walls):.2f} s, "
            f"best {min(walls):.2f} s, worst {max(walls):.2f} s; "
            f"target {1.3 * ideal + 1.5:.2f} s (1.3 x {ideal:.2f} s ideal + 1.5 s)"
        )
        if size_small:
            print("bytes per stored play:")
            print_size("after the benchmark run", size_small)
            print(
                f"  dimension tables (excluded from the budget): {dims[0]:,} B for "
                f"{dims[1]:,} distinct tracks = {dims[0] / dims[1]:.0f} bytes/track"
            )
        if args.history_rows:
            layouts = (
                (1, 12, "one user"),
                (10, 12, "10 users interleaved"),
                (100, 1, "100 users interleaved"),
            )
            for users, batch, label in layouts:
                db_url = cluster.create()
                try:
                    size = synthetic_history(db_url, args.history_rows, users, batch)
                finally:
                    cluster.drop(db_url)
                print_size(f"synthetic, {label}, hourly batches of {batch}", size)
        return 0
    finally:
        cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
