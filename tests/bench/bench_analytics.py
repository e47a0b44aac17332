"""Benchmark of the listening analytics for one heavy listener: prints figures, asserts nothing.

One user with 1,000,000 plays over ten years, generated in SQL: 96,000 tracks on 16,000
albums by 8,000 artists (two albums each, a featured artist on every fifth track); each
play picks an artist by a Zipf-like personal rank (a lifelong taste plus one that changes
every year), one of its albums and a track on it; back-to-back songs with breaks; the first
seven years imported with exact ms_played, the last three from the API without. The user's
zone is Europe/Berlin. Measures:

- the full rebuild (`analytics_rebuild`, what `aggregate --full` runs per user), into empty
  tables and over existing aggregates;
- the incremental update after an hourly run that added 50 plays (45 new, 5 late), through
  `plays_store.insert_plays` + `aggregates.refresh_days` in one transaction as `run` does, on a
  fresh connection (as each hourly run has) and warm;
- each ready-made top-list view per period, and the totals, streak and heatmap views;
- `stats` in-process per period, and `python -m sync stats` as a subprocess;
- table sizes and row counts.

    python -m tests.bench.bench_analytics                  # TEST_DATABASE_URL, else embedded
    python -m tests.bench.bench_analytics --reuse          # keep the generated history
    python -m tests.bench.bench_analytics --plays 100000   # a smaller run
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from sync.commands.stats import cmd_stats
from sync.config import load_settings
from sync.db import schema
from sync.store import aggregates
from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow
from tests.bench import common
from tests.support.pg import with_dbname
from tests.support.store import store_plays

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "shs_bench_analytics"
USER = "bench-listener"
ZONE = "Europe/Berlin"
TRACKS, ALBUMS, ARTISTS = 96_000, 16_000, 8_000
TABLES = (
    "listening_history",
    "listening_days",
    "listening_hour_weekday",
    "listening_day_entities",
    "listening_entity_totals",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.bench_analytics", description=__doc__)
    p.add_argument("--plays", type=int, default=1_000_000)
    p.add_argument("--years", type=float, default=10.0)
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    p.add_argument("--reuse", action="store_true", help="reuse the database if it holds the plays")
    p.add_argument("--runs", type=int, default=10, help="incremental runs of 50 plays")
    return p.parse_args(argv)


def admin_url(args: argparse.Namespace):
    return common.admin_url(args.database_url, "shs-bench-analytics-")


def generate(conn: psycopg.Connection, plays: int, years: float) -> int:
    """Catalogue and history in SQL; returns the user key."""
    key = conn.execute(
        "insert into user_tokens (user_id, refresh_token, time_zone) values (%s, 'x', %s) "
        "returning id",
        (USER, ZONE),
    ).fetchone()[0]
    conn.execute(
        "insert into artists (id, uri, spotify_id, name) "
        "select i, 'spotify:artist:bench' || i, 'bench' || i, 'Artist ' || i "
        "from generate_series(1, %s) i",
        (ARTISTS,),
    )
    conn.execute(
        "insert into albums (id, uri, spotify_id, name, album_type) "
        "select i, 'spotify:album:bench' || i, 'bench' || i, 'Album ' || i, 'album' "
        "from generate_series(1, %s) i",
        (ALBUMS,),
    )
    # album a (1..16000) is by artist 1 + (a - 1) % 8000 (two albums each), six tracks each
    conn.execute(
        "insert into tracks (id, uri, spotify_id, name, album_id, duration_ms, explicit) "
        "select i, 'spotify:track:bench' || i, 'bench' || i, 'Track number ' || i, "
        "       1 + (i - 1) / 6, 120000 + (i * 7919) %% 240000, false "
        "from generate_series(1, %s) i",
        (TRACKS,),
    )
    # the album's artist, and a featured artist on every fifth track
    conn.execute(
        "insert into track_artists (track_id, position, artist_id) "
        "select i, 0, 1 + ((i - 1) / 6) %% %(ar)s from generate_series(1, %(tr)s) i "
        "union all "
        "select i, 1, 1 + (i::bigint * 104729) %% %(ar)s from generate_series(1, %(tr)s) i "
        "where i %% 5 = 0",
        {"ar": ARTISTS, "tr": TRACKS},
    )
    for table in ("artists", "albums", "tracks"):
        conn.execute(
            f"select setval(pg_get_serial_sequence('{table}', 'id'), (select max(id) from {table}))"
        )
    mean_gap = years * 365.25 * 86400 / plays
    long_gap = max(60.0, (mean_gap - 0.9 * 180) / 0.1)
    conn.execute(
        """
        with g as (
            select i,
                   case when random() < 0.9 then 30 + random() * 300
                        else -ln(1 - random()) * %(long)s end as gap_s,
                   floor(exp(random() * ln(%(artists)s)))::bigint as rank,
                   random() as r3, random() as r4, random() as r5, random() as r6
              from generate_series(1, %(n)s) i
        ), c as (
            select i, rank, r3, r4, r5, r6, sum(gap_s) over (order by i) as t from g
        ), s as (
            select i, rank, r3, r4, r5, r6, t, max(t) over () as tmax from c
        ), a as (
            select date_trunc('milliseconds', now() - interval '1 hour'
                              - make_interval(secs => tmax - t)) as played_at,
                   -- artist by personal rank, Zipf-like (log-uniform rank); mostly a
                   -- lifelong taste, otherwise a taste that changes every year
                   1 + ((case when r4 < 0.6 then rank
                              else rank + 997 * floor(t / (365.25 * 86400))::bigint end)
                        * 7919) %% %(artists)s as artist,
                   r5, r6,
                   t < tmax * 0.7 as exported, r3
              from s
        ), p as (
            -- one of the artist's two albums (the first more often), early tracks more often
            select played_at, exported, r3,
                   ((artist - 1 + case when r5 < 0.35 then %(artists)s else 0 end) * 6
                    + floor(6 * r6 * r6)::bigint + 1) as track_id
              from a
        )
        insert into listening_history (user_id, played_at, track_id, ms_played, source)
        select %(key)s, p.played_at, p.track_id,
               case when p.exported
                    then (tr.duration_ms * (0.2 + 0.8 * p.r3))::integer end,
               case when p.exported then 1 else 0 end
          from p join tracks tr on tr.id = p.track_id
         order by p.played_at
        on conflict do nothing
        """,
        {"n": plays, "long": long_gap, "artists": ARTISTS, "key": key},
    )
    return key


def sizes(conn: psycopg.Connection, key: int) -> list[tuple[str, int, int, int]]:
    out = []
    for table in TABLES:
        rows = conn.execute(f"select count(*) from {table} where user_id = %s", (key,)).fetchone()
        total, heap = conn.execute(
            "select pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass)",
            (table, table),
        ).fetchone()
        out.append((table, rows[0], heap, total))
    return out


def vacuum(url: str, *tables: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"vacuum analyze {table}")


def server_cpu(pid: int) -> float | None:
    """CPU seconds used by a server backend so far, when it runs on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_reference(url: str) -> float:
    """Seconds to count 10,000,000 rows of generate_series: to compare machines."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set jit = off")
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            conn.execute("select count(*) from generate_series(1, 10000000)").fetchone()
            best = min(best, time.perf_counter() - started)
    return best


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def hourly_batch(conn: psycopg.Connection, key: int, newest: datetime, run: int) -> list[Play]:
    """50 plays like one hourly run: 45 after the newest stored play, 5 late ones before it."""
    rows = conn.execute(
        "select t.uri, t.name, t.duration_ms, al.uri, al.name, a.uri, a.name "
        "from tracks t join albums al on al.id = t.album_id "
        "join track_artists ta on ta.track_id = t.id and ta.position = 0 "
        "join artists a on a.id = ta.artist_id where t.id %% 997 = %s limit 50",
        (run % 997,),
    ).fetchall()
    plays = []
    for i, (uri, name, dur, al_uri, al_name, ar_uri, ar_name) in enumerate(rows):
        artist = ArtistRow(ar_uri, ar_uri.rsplit(":", 1)[1], ar_name)
        album = AlbumRow(al_uri, al_uri.rsplit(":", 1)[1], al_name, "album", None, None)
        track = TrackRow(
            uri, uri.rsplit(":", 1)[1], name, dur, False, False, None, 1, 1, album, (artist,)
        )
        if i < 45:
            at = newest + timedelta(minutes=3 * (i + 1), milliseconds=run)
        else:
            at = newest - timedelta(hours=5 * (i - 44), milliseconds=137 + run)
        plays.append(Play(at, track))
    return plays


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin, server = admin_url(args)
    url = with_dbname(admin, DB_NAME)
    try:
        version = common.bench_database(admin, DB_NAME, args.reuse)
        where = (
            "the embedded server"
            if server
            else f"{urlparse(admin).hostname}:{urlparse(admin).port}"
        )
        print(
            f"Postgres {version} ({where}), {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}; reference: count(*) of 10M generate_series "
            f"rows {machine_reference(admin):.2f} s (a recent laptop: about 0.5 s)"
        )
        with psycopg.connect(url) as conn:
            schema.migrate(conn)
            if (
                args.reuse
            ):  # an older database: the files are idempotent, bring functions up to date
                for _, path in schema.migrations():
                    conn.execute(path.read_text())
                conn.commit()
            row = conn.execute(
                "select u.id, count(h.*) from user_tokens u left join listening_history h "
                "on h.user_id = u.id where u.user_id = %s group by u.id",
                (USER,),
            ).fetchone()
            if row and row[1] >= args.plays:
                key = row[0]
                print(f"reusing {row[1]:,} plays")
            else:
                if row:
                    conn.execute("delete from user_tokens where id = %s", (row[0],))
                started = time.perf_counter()
                key = generate(conn, args.plays, args.years)
                conn.commit()
                print(f"generated {args.plays:,} plays in {time.perf_counter() - started:.1f}s")
            vacuum(url, "listening_history")
            span = conn.execute(
                "select min(played_at), max(played_at), count(*), "
                "count(*) filter (where ms_played is null) from listening_history "
                "where user_id = %s",
                (key,),
            ).fetchone()
            print(
                f"history: {span[2]:,} plays from {span[0]:%Y-%m-%d} to {span[1]:%Y-%m-%d}, "
                f"{span[3]:,} without ms_played (API), zone {ZONE}"
            )

            # -- full rebuild ---------------------------------------------------
            def empty() -> None:
                for table in TABLES[1:]:
                    conn.execute(f"truncate {table}")
                conn.commit()
                vacuum(url, *TABLES[1:])

            pid = conn.execute("select pg_backend_pid()").fetchone()[0]
            conn.commit()

            def rebuild() -> str:
                cpu = server_cpu(pid)
                started = time.perf_counter()
                aggregates.rebuild(conn, key)
                conn.commit()
                wall = time.perf_counter() - started
                used = server_cpu(pid)
                cpu_note = f" (server CPU {used - cpu:.2f} s)" if used is not None else ""
                return f"{wall:6.2f} s{cpu_note}"

            empty()
            first = rebuild()
            vacuum(url, *TABLES[1:])
            again = rebuild()
            empty()
            third = rebuild()
            vacuum(url, *TABLES[1:])
            print()
            print("full rebuild (analytics_rebuild, one transaction, committed)")
            print(f"  into empty tables         {first}; again {third.strip()}")
            print(f"  over existing aggregates  {again}   (what aggregate --full does)")

        # -- incremental: 50 plays per hourly run --------------------------------
        cold, warm, refresh_only = [], [], []
        for run in range(args.runs):
            with psycopg.connect(url, prepare_threshold=None) as conn:  # as each run connects
                newest = conn.execute(
                    "select max(played_at) from listening_history where user_id = %s", (key,)
                ).fetchone()[0]
                conn.rollback()
                plays = hourly_batch(conn, key, newest, run)
                conn.rollback()
                started = time.perf_counter()
                with conn.transaction():
                    new = store_plays(conn, key, plays)
                    t_refresh = time.perf_counter()
                    aggregates.refresh_days(conn, key, new)
                    refresh_only.append(time.perf_counter() - t_refresh)
                cold.append(time.perf_counter() - started)
                assert len(new) == 50, len(new)
                # warm: the same connection, 50 more plays
                newest = max(p.played_at for p in plays)
                plays = hourly_batch(conn, key, newest, run + 500)
                conn.rollback()
                started = time.perf_counter()
                with conn.transaction():
                    new = store_plays(conn, key, plays)
                    aggregates.refresh_days(conn, key, new)
                warm.append(time.perf_counter() - started)
        print()
        print(
            f"incremental update after a run that added 50 plays ({args.runs} runs; "
            "insert_plays + refresh_days, one transaction)"
        )
        print(
            f"  fresh connection   median {1000 * statistics.median(cold):6.1f} ms   "
            f"max {1000 * max(cold):6.1f} ms"
        )
        print(
            f"    of which refresh median {1000 * statistics.median(refresh_only):6.1f} ms   "
            f"max {1000 * max(refresh_only):6.1f} ms"
        )
        print(
            f"  warm connection    median {1000 * statistics.median(warm):6.1f} ms   "
            f"max {1000 * max(warm):6.1f} ms"
        )

        with psycopg.connect(url, autocommit=True) as conn:
            equal = _check_equal(conn, key)
            print(f"  incremental tables equal a fresh rebuild: {equal}")

        # -- views -------------------------------------------------------------------
        with psycopg.connect(url, autocommit=True) as conn:
            periods = [
                r[0]
                for r in conn.execute("select period from listening_periods(%s, %s)", (key, ZONE))
            ]
            print()
            print(
                "ready-made views: select * from <view> where spotify_user_id = ... and "
                "period = ...  (first on a fresh connection / best of 5)"
            )
            print(
                f"  {'period':<7}"
                + "".join(
                    f"{v:>25}"
                    for v in ("top_tracks", "top_artists", "top_albums", "listening_period_totals")
                )
            )
        worst = worst_best = 0.0
        for period in periods:
            cells = []
            for view in ("top_tracks", "top_artists", "top_albums", "listening_period_totals"):
                sql = f"select * from {view} where spotify_user_id = %s and period = %s"
                with psycopg.connect(url, autocommit=True) as conn:
                    times = []
                    for _ in range(6):
                        started = time.perf_counter()
                        conn.execute(sql, (USER, period)).fetchall()
                        times.append(time.perf_counter() - started)
                first_ms, best_ms = 1000 * times[0], 1000 * min(times[1:])
                if view != "listening_period_totals":
                    worst = max(worst, first_ms)
                    worst_best = max(worst_best, best_ms)
                cells.append(f"{first_ms:9.1f} / {best_ms:6.1f} ms")
            print(f"  {period:<7}" + "".join(f"{c:>25}" for c in cells))
        with psycopg.connect(url, autocommit=True) as conn:
            t_streak = timed(
                lambda: conn.execute(
                    "select * from listening_streaks where spotify_user_id = %s", (USER,)
                ).fetchall()
            )
            t_heat = timed(
                lambda: conn.execute(
                    "select * from listening_heatmap where spotify_user_id = %s", (USER,)
                ).fetchall()
            )
        print(
            f"  slowest top-list query: {worst:.1f} ms first, {worst_best:.1f} ms warm; "
            f"listening_streaks {1000 * t_streak:.1f} ms; listening_heatmap {1000 * t_heat:.1f} ms"
        )

        # -- stats ---------------------------------------------------------------
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNC_", "GITHUB_"))}
        env["DATABASE_URL"] = url
        settings = load_settings(env)
        print()
        print("stats (in-process: connect, migration check, queries, rendering)")
        for period in ("7d", "4w", "6m", "1y", "all", str(datetime.now(UTC).year - 1)):
            times = []
            for _ in range(3):
                buf = io.StringIO()
                started = time.perf_counter()
                with redirect_stdout(buf):
                    cmd_stats(settings, period=period)
                times.append(time.perf_counter() - started)
            print(
                f"  --period {period:<5} first {1000 * times[0]:6.1f} ms, "
                f"best {1000 * min(times):6.1f} ms"
            )
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sync", "stats", "--period", "all"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        wall = time.perf_counter() - started
        print(
            f"  python -m sync stats --period all as a subprocess: {wall:.2f} s wall "
            f"(exit {proc.returncode}, {len(proc.stdout.splitlines())} lines)"
        )

        # -- sizes ---------------------------------------------------------------
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("vacuum analyze")
            rows = sizes(conn, key)
        plays_n = rows[0][1]
        print()
        print(f"  {'table':<26}{'rows':>12}{'heap MB':>10}{'+indexes MB':>13}{'bytes/play':>12}")
        agg_total = 0
        for table, n, heap, total in rows:
            if table != "listening_history":
                agg_total += total
            print(
                f"  {table:<26}{n:>12,}{heap / 2**20:>10.1f}{total / 2**20:>13.1f}"
                f"{total / max(plays_n, 1):>12.1f}"
            )
        print(
            f"  {'analytics total':<26}{'':>12}{'':>10}{agg_total / 2**20:>13.1f}"
            f"{agg_total / max(plays_n, 1):>12.1f}"
        )
        print(
            f"\nload average at the end: {os.getloadavg()[0]:.2f} (other work on the machine "
            "slows every figure above)"
        )
    finally:
        if server is not None:
            server.cleanup()
    return 0


def _check_equal(conn: psycopg.Connection, key: int) -> bool:
    """Incrementally kept tables against a rebuild in a rolled-back transaction."""
    from tests.support.analytics import snapshot

    before = snapshot(conn, [key])
    with conn.transaction() as tx:
        aggregates.rebuild(conn, key)
        after = snapshot(conn, [key])
        raise psycopg.Rollback(tx)
    return before == after


if __name__ == "__main__":
    sys.exit(main())
