"""Start-up of `python -m sync run` with no users: the floor under every hourly run.

Runs the real command --runs times against a migrated, empty local database (no Spotify,
no proxy) and prints the median and spread of the wall time, then the slowest imports of
the same command (`python -X importtime`, cumulative microseconds). Asserts nothing.

    python -m tests.bench.bench_startup
    python -m tests.bench.bench_startup --code /tmp/before   # another checkout's sync
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pg import PgCluster

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_startup", description=__doc__)
    p.add_argument("--code", type=Path, default=ROOT, help="checkout whose sync package runs")
    p.add_argument("--database-url", help="admin URL of a Postgres to create databases on")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--top", type=int, default=15, help="slowest imports to list")
    return p.parse_args(argv)


def env_for(code: Path, db_url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_"))
    }
    env.update(DATABASE_URL=db_url, PYTHONPATH=str(code))
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    code = args.code.resolve()
    cluster = PgCluster()
    db_url = cluster.create(migrated=False)
    try:
        env = env_for(code, db_url)
        run = [sys.executable, "-m", "sync", "run"]
        kw = {"cwd": code, "env": env, "capture_output": True, "stdin": subprocess.DEVNULL}
        subprocess.run([sys.executable, "-m", "sync", "migrate"], check=True, **kw)
        subprocess.run(run, **kw)  # warm the file cache and .pyc files
        walls = []
        for _ in range(args.runs):
            started = time.perf_counter()
            proc = subprocess.run(run, **kw)
            walls.append(time.perf_counter() - started)
        walls.sort()
        print(
            f"`python -m sync run`, no users, local database, code {code}: exit "
            f"{proc.returncode}; median {statistics.median(walls) * 1000:.0f} ms over "
            f"{args.runs} runs (best {walls[0] * 1000:.0f}, worst {walls[-1] * 1000:.0f}); "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        proc = subprocess.run([sys.executable, "-X", "importtime", *run[1:]], text=True, **kw)
        rows = []
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                _, cumulative, name = line.split("|")
                if cumulative.strip().isdigit():
                    rows.append((int(cumulative), name.rstrip()))
        rows.sort(reverse=True)
        print(f"slowest imports (cumulative, one run with -X importtime; top {args.top}):")
        for micros, name in rows[: args.top]:
            print(f"  {micros / 1000:7.1f} ms {name}")
        return 0
    finally:
        cluster.drop(db_url)
        cluster.close()


if __name__ == "__main__":
    raise SystemExit(main())
