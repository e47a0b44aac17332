"""Database round trips of `python -m sync run`, and its wall time with a remote database.

A TCP proxy (tests/support/pgproxy.py) sits between the run and Postgres: it counts round trips
per connection and can delay every server reply, which models a database 20-80 ms away.
The run is the real command as a subprocess against the local stand-in Spotify, so the
script measures any checkout: `--code DIR` runs the `sync` package of DIR (for example an
older commit in a temporary git worktree). Prints figures, asserts nothing.

Part 1, counts (no delay, --concurrency 1): round trips per user = (total with 2N users -
total with N users) / N, so the fixed cost cancels out; for a first sync (no access
token: a refresh), a steady-state sync with 10 new plays per user (valid access token),
and one with nothing new. The fixed cost is the total minus N x per user: the run's own
connection (the first one it opens) and the worker connections' setup, listed apart.

Part 2, wall time: --users users at --concurrency workers, every database reply delayed
by each of --delays, the stand-in Spotify answering after --latency: a first sync, then a
steady-state sync with 10 new plays per user.

    python -m tests.bench.bench_roundtrips
    python -m tests.bench.bench_roundtrips --code /tmp/before   # another checkout's sync
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.conftest import add_user
from tests.support.pg import PgCluster, with_dbname
from tests.support.pgproxy import PgProxy
from tests.support.spotify_fakes import window
from tests.support.standin import Standin, StandinState

ROOT = Path(__file__).resolve().parents[2]
NEW_PLAYS = 10
SCENARIOS = ("first", "new", "nothing_new")
LABELS = {
    "first": "first sync (token refresh)",
    "new": f"steady state, {NEW_PLAYS} new plays (valid token)",
    "nothing_new": "steady state, nothing new (valid token)",
}


@dataclass
class Run:
    wall_s: float
    round_trips: int
    connections: list[int]  # round trips of each connection the run opened, in open order
    synced: int
    users: int
    exit_code: int
    requests: int  # requests the stand-in Spotify answered
    bytes_sent: int = 0  # from the job to the database, all connections


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_roundtrips",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--code", type=Path, default=ROOT, help="checkout whose sync package runs")
    p.add_argument("--database-url", help="admin URL of a Postgres to create databases on")
    p.add_argument("--count-users", type=int, default=10, help="N of the N / 2N count runs")
    p.add_argument("--users", type=int, default=50, help="users of the wall-time runs")
    p.add_argument("--concurrency", type=int, default=4, help="workers of the wall-time runs")
    p.add_argument("--delays", default="0.02,0.08", help="database reply delays, seconds")
    p.add_argument("--latency", type=float, default=0.05, help="stand-in Spotify delay, s")
    p.add_argument("--repeat", type=int, default=1, help="wall-time runs per delay")
    p.add_argument("--skip-counts", action="store_true")
    p.add_argument("--skip-wall", action="store_true")
    return p.parse_args(argv)


def sync_env(code: Path, db_url: str, standin: Standin) -> dict[str, str]:
    env = standin.cli_env(db_url)
    env["PYTHONPATH"] = str(code)
    return env


def build_template(cluster: PgCluster, code: Path) -> None:
    """The template database, migrated by the measured checkout's own `sync migrate`."""
    with cluster.admin() as conn:
        conn.execute(f'drop database if exists "{cluster.template}"')
        conn.execute(f'create database "{cluster.template}"')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "SYNC_"))}
    env.update(DATABASE_URL=with_dbname(cluster.admin_url, cluster.template), PYTHONPATH=str(code))
    subprocess.run(
        [sys.executable, "-m", "sync", "migrate"],
        cwd=code,
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def seed(db_url: str, state: StandinState, users: int) -> list[str]:
    """Users as a login stores them (refresh token only), each with 10 plays on Spotify."""
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    names = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n in range(users):
            name, refresh = f"rt-user-{n:04d}", f"rt-refresh-{n:04d}-0123456789"
            add_user(conn, name, refresh)
            state.refresh_tokens[refresh] = name
            state.plays[name] = window(newest - timedelta(seconds=n), NEW_PLAYS, start_n=n * 100)
            names.append(name)
    return names


def add_new_plays(state: StandinState, names: list[str]) -> None:
    """Ten plays newer than the stored ones for every user (Spotify keeps the newest 50)."""
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with state.lock:
        for n, name in enumerate(names):
            fresh = window(newest - timedelta(seconds=n), NEW_PLAYS, start_n=n * 100 + 50)
            state.plays[name] = (fresh + state.plays[name])[:50]


def run_sync(code: Path, proxy: PgProxy, standin: Standin, concurrency: int) -> Run:
    opened = len(proxy.per_connection)
    proxy.reset()
    with standin.state.lock:
        standin.state.requests.clear()
    cmd = [sys.executable, "-m", "sync", "run", "--concurrency", str(concurrency), "--json"]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=code,
        env=sync_env(code, proxy.url, standin),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        sys.exit(f"no JSON from the run (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    connections = list(proxy.per_connection[opened:])
    with standin.state.lock:
        requests = len(standin.state.requests)
    return Run(
        wall_s=wall,
        round_trips=sum(connections),
        connections=connections,
        synced=report["users_synced"],
        users=report["users_total"],
        exit_code=proc.returncode,
        requests=requests,
        bytes_sent=proxy.bytes_sent,
    )


def three_runs(code, cluster, users, concurrency, latency, delay) -> dict[str, Run]:
    """A first sync, a steady-state sync with new plays, one with nothing new."""
    db_url = cluster.create()
    try:
        with Standin(StandinState(latency=latency)) as standin, PgProxy(db_url, delay) as proxy:
            names = seed(db_url, standin.state, users)
            runs = {"first": run_sync(code, proxy, standin, concurrency)}
            add_new_plays(standin.state, names)
            runs["new"] = run_sync(code, proxy, standin, concurrency)
            runs["nothing_new"] = run_sync(code, proxy, standin, concurrency)
    finally:
        cluster.drop(db_url)
    for label, r in runs.items():
        if r.synced != users or r.exit_code != 0:
            print(f"  warning: {label}: {r.synced} of {r.users} synced, exit {r.exit_code}")
    return runs


def counts(code: Path, cluster: PgCluster, n: int) -> dict[str, float]:
    """Round trips per user of each scenario; prints them with the fixed cost."""
    small = three_runs(code, cluster, n, 1, 0.0, 0.0)
    large = three_runs(code, cluster, 2 * n, 1, 0.0, 0.0)
    print(
        f"round trips per user ((2N - N) / N, N = {n}, --concurrency 1, no delay); each "
        "connection's count includes its closing message (Terminate), which waits for no "
        "reply, so it is shown as '+ 1 close':"
    )
    per_users = {}
    for key in SCENARIOS:
        per_user = per_users[key] = (large[key].round_trips - small[key].round_trips) / n
        sent = (large[key].bytes_sent - small[key].bytes_sent) / n
        fixed = small[key].round_trips - n * per_user
        own = small[key].connections[0]
        workers = small[key].connections[1:]
        setup = (fixed - own) / len(workers) if workers else 0.0
        print(
            f"  {LABELS[key]:<42} {per_user:5.2f} per user | fixed {fixed:4.1f}: run's own "
            f"connection {own - 1} + 1 close, {len(workers)} worker connection(s) x "
            f"({setup - 1:.1f} + 1 close) | Spotify requests "
            f"{large[key].requests / (2 * n):.2f} per user | {sent / 1000:.1f} kB sent to the "
            "database per user"
        )
    return per_users


def walls(code: Path, cluster: PgCluster, args: argparse.Namespace, per_users: dict) -> None:
    for delay in (float(d) for d in args.delays.split(",")):
        for attempt in range(args.repeat):
            runs = three_runs(code, cluster, args.users, args.concurrency, args.latency, delay)
            print(
                f"wall time, {args.users} users, --concurrency {args.concurrency}, database "
                f"reply delay {delay * 1000:.0f} ms, Spotify {args.latency * 1000:.0f} ms"
                f"{f' (#{attempt + 1})' if args.repeat > 1 else ''}; load average "
                f"{os.getloadavg()[0]:.2f}:"
            )
            for key in SCENARIOS:
                r = runs[key]
                fixed = ""
                if key in per_users:
                    extra = r.round_trips - args.users * per_users[key]
                    fixed = f" (fixed: {extra:.0f} = total - {args.users} x per user)"
                print(
                    f"  {LABELS[key]:<42} {r.wall_s:6.2f} s | {r.round_trips} round trips "
                    f"on {len(r.connections)} connections{fixed}, {r.requests} Spotify requests"
                )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    code = args.code.resolve()
    head = subprocess.run(
        ["git", "-C", str(code), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    where = "TEST_DATABASE_URL server" if os.environ.get("TEST_DATABASE_URL") else "embedded"
    print(
        f"code: {code} ({head[:70]}); Postgres: {where}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    cluster = PgCluster()
    try:
        build_template(cluster, code)
        per_users = {} if args.skip_counts else counts(code, cluster, args.count_users)
        if not args.skip_wall:
            walls(code, cluster, args, per_users)
        return 0
    finally:
        cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
