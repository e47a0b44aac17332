"""Benchmark: `python -m sync export` of one user's 1,000,000 plays; prints figures, asserts
nothing.

Generates the history in SQL (50,000 tracks on 4,000 albums by 2,000 artists, a featured
artist on every fifth track; ten years of plays: the first seven imported with exact
ms_played, a share of them from account data with a few same-song plays a millisecond apart,
the last three from the Web API without ms_played), then runs the real command in a
subprocess per format and prints wall time, plays per second, peak memory of the exporting
process (getrusage maxrss) and the file's size. Memory should not depend on the history:
`--plays 100000` prints about the same peak as the default.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m tests.bench.bench_export             # a running server
    .venv/bin/python -m tests.bench.bench_export                 # embedded Postgres
    .venv/bin/python -m tests.bench.bench_export --plays 100000 --reuse --formats spotify

Target (issue 18): 1,000,000 plays in at most 15 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from sync.db import schema
from tests.bench import common
from tests.support.pg import with_dbname

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "shs_bench_export"
USER = "bench-exporter"
TRACKS, ALBUMS, ARTISTS = 50_000, 4_000, 2_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_export", description=__doc__)
    p.add_argument("--plays", type=int, default=1_000_000)
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    p.add_argument("--reuse", action="store_true", help="reuse the database if it holds the plays")
    p.add_argument("--formats", default="spotify,csv", help="comma-separated: spotify, csv")
    p.add_argument("--keep", action="store_true", help="keep the exported files (prints where)")
    p.add_argument(
        "--round-trip",
        action="store_true",
        help="also import the zip into an empty database and compare the plays",
    )
    return p.parse_args(argv)


def admin_url(args: argparse.Namespace):
    return common.admin_url(args.database_url, "shs-bench-export-")


def generate(conn: psycopg.Connection, plays: int) -> int:
    """Catalogue and history in SQL; returns the user key."""
    key = conn.execute(
        "insert into user_tokens (user_id, refresh_token) values (%s, 'x') returning id", (USER,)
    ).fetchone()[0]
    conn.execute(
        "insert into artists (id, uri, spotify_id, name) "
        "select i, 'spotify:artist:bench' || i, 'bench' || i, 'Artist name ' || i "
        "from generate_series(1, %s) i",
        (ARTISTS,),
    )
    conn.execute(
        "insert into albums (id, uri, spotify_id, name, album_type) "
        "select i, 'spotify:album:bench' || i, 'bench' || i, 'Album title ' || i, 'album' "
        "from generate_series(1, %s) i",
        (ALBUMS,),
    )
    conn.execute(
        "insert into tracks (id, uri, spotify_id, name, album_id, duration_ms, explicit) "
        "select i, 'spotify:track:' || lpad(i::text, 22, '0'), lpad(i::text, 22, '0'), "
        "       'Track title number ' || i, 1 + (i - 1) %% %s, 120000 + (i * 7919) %% 240000, "
        "       false from generate_series(1, %s) i",
        (ALBUMS, TRACKS),
    )
    conn.execute(
        "insert into track_artists (track_id, position, artist_id) "
        "select i, 0, 1 + ((i - 1) %% %(al)s) %% %(ar)s from generate_series(1, %(tr)s) i "
        "union all "
        "select i, 1, 1 + (i::bigint * 104729) %% %(ar)s from generate_series(1, %(tr)s) i "
        "where i %% 5 = 0",
        {"al": ALBUMS, "ar": ARTISTS, "tr": TRACKS},
    )
    for table in ("artists", "albums", "tracks"):
        conn.execute(
            f"select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))"
        )
    # ten years of plays, 60-570 s apart; a long tail of songs (log-uniform rank); the first
    # 70% exported (one in six of those from account data, whole minutes), the rest Web API
    conn.execute(
        """
        with g as (
            select i, 60 + random() * 510 as gap_s,
                   floor(exp(random() * ln(%(tracks)s)))::integer as track_id,
                   random() as r
              from generate_series(1, %(n)s) i
        ), t as (
            select i, track_id, r, sum(gap_s) over (order by i) as s,
                   i > %(n)s * 0.7 as api, i %% 6 = 0 as account
              from g
        )
        insert into listening_history (user_id, played_at, track_id, ms_played, source)
        select %(key)s,
               case when api then timestamptz '2016-01-01' + make_interval(secs => s)
                    when account then date_trunc('minute', timestamptz '2016-01-01'
                                                 + make_interval(secs => s))
                    else date_trunc('second', timestamptz '2016-01-01'
                                    + make_interval(secs => s)) end,
               t.track_id,
               case when not api then (30000 + r * 200000)::integer end,
               case when api then 0 when account then 2 else 1 end
          from t
         order by 2
        on conflict do nothing
        """,
        {"n": plays, "tracks": TRACKS, "key": key},
    )
    # same-song plays a millisecond apart, as account-data collisions leave them
    conn.execute(
        "insert into listening_history (user_id, played_at, track_id, ms_played, source) "
        "select user_id, played_at + interval '1 millisecond', track_id, ms_played + 1, 2 "
        "from listening_history where user_id = %s and source = 2 and track_id %% 97 = 0 "
        "on conflict do nothing",
        (key,),
    )
    return key


def export(url: str, fmt: str, out: Path) -> tuple[float, float, str]:
    """(seconds, peak MB of the child, its output) of one `python -m sync export`."""
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("SYNC_SHOW_USER_IDS", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sync", "export", "--user", USER, "--format", fmt,
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"export failed ({done.returncode}): {done.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # maxrss of children is the largest child so far
        print("  (peak memory not below an earlier child's: run one format to measure it)")
    return seconds, peak / 1024, done.stdout.strip()


PLAYS_SQL = """
select floor(date_part('epoch', h.played_at))::bigint, t.uri, h.ms_played, h.source
  from listening_history h join tracks t on t.id = h.track_id
  join user_tokens u on u.id = h.user_id
 where u.user_id = %s order by h.played_at
"""


def round_trip(admin: str, url: str, archive: Path) -> None:
    """Import the export into an empty database (the real command) and compare the plays:
    the same end second and track, and ms_played for the plays that were imported."""
    name = f"{DB_NAME}_rt"
    with psycopg.connect(admin, autocommit=True) as a:
        a.execute(f'drop database if exists "{name}" with (force)')
        a.execute(f'create database "{name}"')
    target = with_dbname(admin, name)
    with psycopg.connect(target) as conn:
        schema.migrate(conn)
        conn.execute("insert into user_tokens (user_id, refresh_token) values (%s, 'x')", (USER,))
        conn.commit()
    env = {**os.environ, "DATABASE_URL": target}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sync", "import", str(archive), "--user", USER,
         "--min-seconds", "0", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest child so far
    print(f"round trip: imported into an empty database in {time.perf_counter() - started:.1f} s "
          f"(largest peak RSS of any process so far, parsers included: {peak:.0f} MB)")  # fmt: skip
    with psycopg.connect(url) as a, psycopg.connect(target) as b:
        before = a.execute(PLAYS_SQL, (USER,)).fetchall()
        after = b.execute(PLAYS_SQL, (USER,)).fetchall()
    # multisets: a moved play shares its stated second and track with the play it left
    same = sum((Counter(r[:2] for r in before) & Counter(r[:2] for r in after)).values())
    exact = Counter(r[:3] for r in before if r[3] != 0)
    kept = sum((exact & Counter(r[:3] for r in after)).values())
    exact = list(exact.elements())
    print(f"  {len(before):,} plays before, {len(after):,} after; {same:,} with the same end "
          f"second and track; ms_played kept for {kept:,} of {len(exact):,} imported plays "
          "(the others moved a second)")  # fmt: skip
    with psycopg.connect(admin, autocommit=True) as a:
        a.execute(f'drop database "{name}" with (force)')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin, server = admin_url(args)
    url = with_dbname(admin, DB_NAME)
    try:
        version = common.bench_database(admin, DB_NAME, args.reuse)
        where = "embedded" if server else f"{urlparse(admin).hostname}:{urlparse(admin).port}"
        print(f"Postgres {version} ({where}), {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        with psycopg.connect(url) as conn:
            schema.migrate(conn)
            row = conn.execute(
                "select u.id, count(h.*) from user_tokens u left join listening_history h "
                "on h.user_id = u.id where u.user_id = %s group by u.id",
                (USER,),
            ).fetchone()
            if row and row[1] >= args.plays:
                print(f"reusing {row[1]:,} plays")
            else:
                if row:
                    conn.execute("delete from user_tokens where id = %s", (row[0],))
                started = time.perf_counter()
                generate(conn, args.plays)
                conn.commit()
                print(f"generated the history in {time.perf_counter() - started:.1f}s")
            plays = conn.execute(
                "select count(*) from listening_history h join user_tokens u on u.id = h.user_id"
                " where u.user_id = %s",
                (USER,),
            ).fetchone()[0]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("vacuum analyze listening_history")
        folder = Path(tempfile.mkdtemp(prefix="shs-export-"))
        archive: Path | None = None
        for fmt in args.formats.split(","):
            out = folder / f"export.{'zip' if fmt == 'spotify' else 'csv'}"
            seconds, peak, output = export(url, fmt, out)
            size = out.stat().st_size / 1e6
            print(f"{fmt}: {plays:,} plays in {seconds:.1f} s ({plays / seconds:,.0f} plays/s), "
                  f"peak RSS {peak:.0f} MB, file {size:.0f} MB")  # fmt: skip
            for line in output.splitlines():
                print(f"  | {line}")
            if args.round_trip and fmt == "spotify":
                archive = out
            elif not args.keep:
                out.unlink()
        if archive is not None:  # last: a forked child counts its parent's memory as its own
            round_trip(admin, url, archive)
            if not args.keep:
                archive.unlink()
        if args.keep:
            print(f"files in {folder}")
        else:
            folder.rmdir()
    finally:
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
