"""Benchmark: `python -m sync import` of a 1,000,000-play extended streaming history.

Generates an export shaped like Spotify's (files of ~15,000 entries, ~800 bytes each,
indented JSON, chronological; 50,000 tracks by 8,000 artists with a long-tailed
popularity; a realistic share of short plays, incognito plays, podcasts and duplicate
rows), imports it with the real command in a subprocess, and prints entries per second
and the peak memory of the importing process and of its parser processes
(getrusage maxrss). Then imports the same export again (everything is already stored).

    .venv/bin/python tests/bench/bench_import.py                 # embedded Postgres
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python tests/bench/bench_import.py             # a running server
    .venv/bin/python tests/bench/bench_import.py --plays 200000 --no-reimport

Target (issue 4): at least 100,000 plays/s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ENTRIES_PER_FILE = 15_000
TRACKS = 50_000
ARTISTS = 8_000


def _entry_text(rng: random.Random, when: datetime, track: int) -> dict:
    album = track // 12  # about 12 tracks an album, one artist an album
    artist = (album * 7919) % ARTISTS
    roll = rng.random()
    entry = {
        "ts": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": "Android OS 14 API 34 (Google, Pixel 8)",
        "ms_played": rng.randint(120_000, 300_000) if roll > 0.08 else rng.randint(0, 29_000),
        "conn_country": "DE",
        "ip_addr": "203.0.113.45",
        "master_metadata_track_name": f"Track title number {track}",
        "master_metadata_album_artist_name": f"Artist name {artist}",
        "master_metadata_album_album_name": f"Album title {album}",
        "spotify_track_uri": f"spotify:track:{track:022d}",
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": rng.random() < 0.4,
        "skipped": roll < 0.08,
        "offline": False,
        "offline_timestamp": int(when.timestamp() * 1000),
        "incognito_mode": rng.random() < 0.01,
    }
    if rng.random() < 0.02:  # a podcast episode
        entry.update(
            master_metadata_track_name=None,
            master_metadata_album_artist_name=None,
            master_metadata_album_album_name=None,
            spotify_track_uri=None,
            episode_name=f"Episode {track}",
            episode_show_name="Some show",
            spotify_episode_uri=f"spotify:episode:{track:022d}",
        )
    return entry


def generate(folder: Path, plays: int, seed: int = 7) -> int:
    """Write the export; return its size in bytes."""
    rng = random.Random(seed)
    weights = [1 / (rank + 10) for rank in range(TRACKS)]  # long tail of songs
    tracks = rng.choices(range(TRACKS), weights=weights, k=plays)
    when = datetime(2017, 1, 1, tzinfo=UTC)
    total = 0
    batch: list[dict] = []
    file_no = 0
    for i in range(plays):
        when += timedelta(seconds=rng.randint(60, 420))
        if batch and rng.random() < 0.005:  # Spotify repeats rows now and then
            batch.append(dict(batch[-1]))
            continue
        batch.append(_entry_text(rng, when, tracks[i]))
        if len(batch) >= ENTRIES_PER_FILE or i == plays - 1:
            years = f"{batch[0]['ts'][:4]}-{batch[-1]['ts'][:4]}"
            path = folder / f"Streaming_History_Audio_{years}_{file_no}.json"
            path.write_text(json.dumps(batch, indent=2, ensure_ascii=False), encoding="utf-8")
            total += path.stat().st_size
            batch = []
            file_no += 1
    if batch:
        path = folder / f"Streaming_History_Audio_rest_{file_no}.json"
        path.write_text(json.dumps(batch, indent=2), encoding="utf-8")
        total += path.stat().st_size
    return total


def child(argv: list[str], usage_path: str) -> int:
    """Run the import in this process, then record peak memory of it and its workers."""
    from sync.cli import main

    if os.environ.get("BENCH_NO_ANALYTICS"):  # measure the import machinery alone
        from sync.store import aggregates

        aggregates.refresh_days = lambda *args, **kwargs: None
        aggregates.rebuild = lambda *args, **kwargs: None

    import psycopg

    backend_cpu: list[float] = []
    real_close = psycopg.Connection.close

    def close(conn):  # read the server process's CPU time (local servers only)
        try:
            pid = conn.info.backend_pid
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            backend_cpu.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError, psycopg.Error):
            pass
        real_close(conn)

    psycopg.Connection.close = close
    code = main(argv)
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(usage_path).write_text(json.dumps({
        "self_kb": own.ru_maxrss, "children_kb": workers.ru_maxrss,
        "self_cpu": own.ru_utime + own.ru_stime,
        "children_cpu": workers.ru_utime + workers.ru_stime,
        "server_cpu": max(backend_cpu, default=None),
    }))  # fmt: skip
    return code


def run_import(url: str, folder: Path, label: str, entries: int, analytics: bool = True) -> dict:
    usage = folder.parent / f"usage-{label}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "SYNC_"))}
    env["DATABASE_URL"] = url
    if not analytics:
        env["BENCH_NO_ANALYTICS"] = "1"
        label += ", analytics refresh skipped"
    cmd = [sys.executable, __file__, "--child", str(usage), "-v", "import", str(folder),
           "--user", "bench-user", "--no-progress"]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
        raise SystemExit(f"import failed with exit code {proc.returncode}")
    peak = json.loads(usage.read_text())
    summary = [line for line in proc.stdout.splitlines() if line.startswith("imported")]
    steps = [line for line in proc.stderr.splitlines() if line.startswith("import steps")]
    print(f"\n[{label}] {summary[0] if summary else proc.stdout.strip()[-400:]}")
    if steps:
        print(f"[{label}] {steps[0]}")
    print(f"[{label}] wall {elapsed:.2f}s (incl. interpreter start) -> "
          f"{entries / elapsed:,.0f} entries/s")  # fmt: skip
    print(f"[{label}] peak RSS: importer {peak['self_kb'] / 1024:.0f} MB, "
          f"largest parser worker {peak['children_kb'] / 1024:.0f} MB")  # fmt: skip
    server = f"{peak['server_cpu']:.1f}s" if peak.get("server_cpu") is not None else "n/a"
    print(f"[{label}] CPU: importer {peak['self_cpu']:.1f}s, parser workers "
          f"{peak['children_cpu']:.1f}s, Postgres backend {server}")  # fmt: skip
    return {"elapsed": elapsed, **peak}


def _fresh(cluster) -> str:
    import psycopg

    url = cluster.create()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into user_tokens (user_id, refresh_token) values (%s, %s)",
                     ("bench-user", "bench-refresh"))  # fmt: skip
    return url


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[3:], sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=1_000_000)
    parser.add_argument("--no-reimport", action="store_true", help="skip the second import")
    parser.add_argument(
        "--analytics",
        choices=("on", "off", "both"),
        default="both",
        help="update analytics as the real command does (on), skip that to time the import "
        "machinery alone (off), or both (default)",
    )
    parser.add_argument("--keep", metavar="DIR", help="generate into (or reuse) this folder")
    args = parser.parse_args()

    import psycopg

    from tests.support.pg import PgCluster

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="shs-bench-")) / "x"
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.glob("Streaming_History_Audio_*.json")):
        t = time.perf_counter()
        size = generate(folder, args.plays)
        print(f"generated {args.plays:,} entries in {len(list(folder.glob('*.json')))} files, "
              f"{size / 1e6:.0f} MB, in {time.perf_counter() - t:.1f}s")  # fmt: skip
    entries = sum(len(json.loads(p.read_bytes())) for p in folder.glob("*.json"))
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, export: "
          f"{entries:,} entries in {len(list(folder.glob('*.json')))} files")  # fmt: skip
    cluster = PgCluster()
    cluster.build_template()
    urls = []
    try:
        if args.analytics in ("off", "both"):
            urls.append(url := _fresh(cluster))
            with psycopg.connect(url, autocommit=True) as conn:
                print("postgres:", conn.execute("show server_version").fetchone()[0])
            run_import(url, folder, "first import", entries, analytics=False)
        if args.analytics in ("on", "both"):
            urls.append(url := _fresh(cluster))
            run_import(url, folder, "first import", entries)
        with psycopg.connect(url, autocommit=True) as conn:
            stored = conn.execute("select count(*) from listening_history").fetchone()[0]
            size = conn.execute("select pg_total_relation_size('listening_history')").fetchone()[0]
            print(f"stored plays: {stored:,}; listening_history with indexes: "
                  f"{size / stored:.0f} bytes per play")  # fmt: skip
        if not args.no_reimport:
            run_import(url, folder, "same export again", entries, args.analytics != "off")
            with psycopg.connect(url, autocommit=True) as conn:
                again = conn.execute("select count(*) from listening_history").fetchone()[0]
            print(f"stored plays after the second import: {again:,} (unchanged: {again == stored})")
    finally:
        for url in urls:
            cluster.drop(url)
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
