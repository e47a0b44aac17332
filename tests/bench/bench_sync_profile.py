"""Where a `sync run` spends its time: per-phase wall time summed over worker threads.

Runs the CLI in-process (same code as `python -m sync run`) against the stand-in
Spotify and a real Postgres, with timers wrapped around the HTTP funnel and the
storage calls. Use it when bench_sync.py shows a run slower than its target.

    python -m tests.bench.bench_sync_profile            # cold run (tokens to refresh)
    python -m tests.bench.bench_sync_profile --warm     # rerun with valid tokens
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import psycopg

from tests.bench.bench_sync import cli_env, seed
from tests.support.pg import PgCluster
from tests.support.standin import Standin, StandinState

_totals: defaultdict[str, float] = defaultdict(float)
_calls: Counter[str] = Counter()
_lock = threading.Lock()


def _timed(owner: object, name: str, label: str) -> None:
    """Replace owner.name by a wrapper that adds its wall time to `label`."""
    func: Callable = getattr(owner, name)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            with _lock:
                _totals[label] += time.perf_counter() - started
                _calls[label] += 1

    setattr(owner, name, wrapper)


def instrument() -> None:
    from sync import db
    from sync.db import schema
    from sync.job import pipeline, tokens
    from sync.spotify import client as spotify
    from sync.store import outcome, runs, users

    _timed(db, "connect", "db.connect")
    _timed(schema, "migrate", "schema.migrate")
    _timed(runs, "candidates", "runs.candidates")
    _timed(runs, "open_run", "runs.open_run")
    _timed(runs, "finish_run", "runs.finish_run")
    _timed(users, "claim", "users.claim (one UPDATE)")
    _timed(users, "save_tokens", "users.save_tokens")
    _timed(outcome, "save", "outcome.save (sync_store_user: the whole write)")
    _timed(tokens, "refresh_access_token", "tokens.refresh_access_token (HTTP + save)")
    _timed(pipeline, "sync_user", "pipeline.sync_user (whole user)")
    _timed(pipeline, "fetch_window", "pipeline.fetch_window")
    _timed(pipeline, "parse_items", "pipeline.parse_items")
    _timed(spotify.SpotifyClient, "request", "SpotifyClient.request (HTTP)")
    _timed(psycopg.Connection, "execute", "psycopg execute (one statement)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_sync_profile")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--plays", type=int, default=50)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--warm", action="store_true", help="profile a rerun with valid tokens")
    p.add_argument("--database-url", help="admin URL of a Postgres (else TEST_DATABASE_URL)")
    args = p.parse_args(argv)
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    cluster = PgCluster()
    try:
        cluster.build_template()
        db_url = cluster.create()
        with Standin(StandinState(latency=args.latency)) as standin:
            seed(db_url, standin.state, args.users, args.plays)
            os.environ.update(cli_env(db_url, standin))
            from sync import cli

            run = ["run", "--concurrency", str(args.concurrency), "--json"]
            if args.warm:
                with contextlib.redirect_stdout(io.StringIO()):
                    cli.main(run)
            instrument()
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(run)
            wall = time.perf_counter() - started
        cluster.drop(db_url)
    finally:
        cluster.close()
    kind = "warm rerun" if args.warm else "cold run"
    print(
        f"{kind}: {args.users} users, --concurrency {args.concurrency}, latency "
        f"{args.latency * 1000:.0f} ms: cli.main took {wall:.2f} s (exit {code}); "
        "time summed over threads:"
    )
    for label, total in sorted(_totals.items(), key=lambda kv: -kv[1]):
        n = _calls[label]
        print(f"  {label:<55} {total:7.2f} s  {n:4d} calls  {1000 * total / n:6.1f} ms each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
