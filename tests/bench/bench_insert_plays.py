"""Benchmark: one `plays_store.insert_plays` of a 50-play window for a user with ~1M plays.

`sync run` calls insert_plays for every user on every run; with the user's export
imported, it asks history_api_plays_to_insert (sql/003) which fetched plays an imported
play already stands for. On Postgres 15 with JIT on (Supabase's default), a large cost
estimate there made every call compile JIT code (~0.6 s). This prints the time of one
call, each run in a transaction that is rolled back, so every repeat does the same work.

History generated in SQL: one user, --plays plays 3.5 minutes apart, the older 90%
imported (source 1, with ms_played), the rest synced (source 0); 20,000 tracks by 2,000
artists. Windows timed:
  new       50 plays after the newest stored one (the hourly case)
  imported  50 plays inside the imported range, 0.7 s after stored ones, 10 of them of
            another track of the same name and artist (import-then-sync; all are skipped)
  completed the `new` window after 10 of its tracks lost length and album (as an import
            leaves them): the sync completes them and refreshes the analytics of their
            ~500 older plays, on as many days (upsert_tracks -> analytics.refresh_tracks)

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m tests.bench.bench_insert_plays           # a running server
    .venv/bin/python -m tests.bench.bench_insert_plays --plays 200000  # embedded server

Nothing here asserts: read the output (median and best of --repeat calls, milliseconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg

from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow
from tests.support.pg import PgCluster
from tests.support.store import store_plays

START = datetime(2017, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=3, seconds=30)
TRACKS = 20_000
ARTISTS = 2_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.bench_insert_plays", description=__doc__
    )
    p.add_argument("--plays", type=int, default=1_000_000, help="stored plays of the user")
    p.add_argument("--repeat", type=int, default=15, help="timed calls per case")
    p.add_argument("--database-url", help="admin URL of a Postgres to create a database on")
    return p.parse_args(argv)


def fill(conn: psycopg.Connection, plays: int) -> int:
    """The user, the catalogue and the history; returns the user's key."""
    key = conn.execute(
        "insert into user_tokens (user_id, refresh_token) values ('bench', 'bench-refresh') "
        "returning id"
    ).fetchone()[0]
    conn.execute(
        "insert into artists (uri, spotify_id, name) select 'spotify:artist:a' || g, 'a' || g, "
        "'Artist ' || g from generate_series(1, %s) g",
        (ARTISTS,),
    )
    conn.execute(
        "insert into albums (uri, spotify_id, name) select 'spotify:album:b' || g, 'b' || g, "
        "'Album ' || g from generate_series(1, %s) g",
        (TRACKS // 10,),
    )
    conn.execute(
        """insert into tracks (uri, spotify_id, name, album_id, duration_ms, is_local)
           select 'spotify:track:t' || g, 't' || g, 'Song ' || g,
                  (select id from albums where uri = 'spotify:album:b' || (1 + g %% %s)),
                  150000 + g %% 120000, false
             from generate_series(1, %s) g""",
        (TRACKS // 10, TRACKS),
    )
    conn.execute(
        """insert into track_artists (track_id, position, artist_id)
           select t.id, 0, a.id from tracks t
             join artists a on a.uri = 'spotify:artist:a' || (1 + substr(t.uri, 16)::int %% %s)""",
        (ARTISTS,),
    )
    lo = conn.execute("select min(id) from tracks").fetchone()[0]
    imported = plays * 9 // 10
    conn.execute(
        """insert into listening_history (user_id, played_at, track_id, ms_played, source)
           select %(key)s, %(start)s + g * %(step)s, %(lo)s + (g::bigint * 7919) %% %(tracks)s,
                  case when g < %(imported)s then 120000 end,
                  case when g < %(imported)s then 1 else 0 end
             from generate_series(0, %(plays)s - 1) g order by g""",
        {"key": key, "start": START, "step": STEP, "lo": lo, "tracks": TRACKS,
         "imported": imported, "plays": plays},
    )  # fmt: skip
    conn.execute("select analytics_rebuild(%s)", (key,))
    conn.execute("vacuum analyze")
    return key


def track_row(n: int, *, twin: bool = False) -> TrackRow:
    """Catalogue track n as the Web API reports it; twin: another id, same name and artist."""
    artist = 1 + n % ARTISTS
    album = 1 + n % (TRACKS // 10)
    tid = f"x{n}" if twin else f"t{n}"
    return TrackRow(
        uri=f"spotify:track:{tid}", spotify_id=tid, name=f"Song {n}",
        duration_ms=150000 + n % 120000, explicit=None, is_local=False, isrc=None,
        track_number=None, disc_number=None,
        album=AlbumRow(f"spotify:album:b{album}", f"b{album}", f"Album {album}", None, None, None),
        artists=(ArtistRow(f"spotify:artist:a{artist}", f"a{artist}", f"Artist {artist}"),),
    )  # fmt: skip


def windows(plays: int) -> dict[str, list[Play]]:
    newest = START + (plays - 1) * STEP
    new = [Play(newest + (i + 1) * STEP, track_row(1 + i * 37 % TRACKS)) for i in range(50)]
    # Inside the imported range: stored play g is of track 1 + (g * 7919) % TRACKS.
    base = plays // 2
    imported = []
    for i in range(50):
        g = base + i
        n = 1 + (g * 7919) % TRACKS
        imported.append(Play(START + g * STEP + timedelta(seconds=0.7), track_row(n, twin=i < 10)))
    return {"new": new, "imported": imported, "completed": new}


def time_call(
    conn: psycopg.Connection, key: int, plays: list[Play], repeat: int, strip: bool = False
) -> tuple:
    times, inserted = [], 0
    for _ in range(repeat):
        with conn.transaction() as tx:
            if strip:  # not timed
                conn.execute(
                    "update tracks set duration_ms = null, album_id = null where uri = any(%s)",
                    ([p.track.uri for p in plays[:10]],),
                )
            started = time.perf_counter()
            inserted = len(store_plays(conn, key, plays))
            times.append(time.perf_counter() - started)
            raise psycopg.Rollback(tx)
    return statistics.median(times) * 1000, min(times) * 1000, inserted


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url:
        os.environ["TEST_DATABASE_URL"] = args.database_url
    cluster = PgCluster()
    try:
        cluster.build_template()
        url = cluster.create()
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                version = conn.execute("show server_version").fetchone()[0]
                jit = conn.execute("select current_setting('jit'), pg_jit_available()").fetchone()
                started = time.perf_counter()
                key = fill(conn, args.plays)
                print(
                    f"insert_plays benchmark: Postgres {version} (jit={jit[0]}, "
                    f"JIT available: {jit[1]}), user with {args.plays:,} plays "
                    f"(generated in {time.perf_counter() - started:.0f} s), "
                    f"{args.repeat} calls per case, {os.cpu_count()} CPUs, "
                    f"load {os.getloadavg()[0]:.2f}"
                )
                conn.autocommit = False
                for setting in ("on", "off"):
                    conn.execute(f"set jit = {setting}")
                    for name, plays in windows(args.plays).items():
                        repeat = args.repeat if name != "completed" else 3
                        median, best, inserted = time_call(
                            conn, key, plays, repeat, strip=name == "completed"
                        )
                        print(
                            f"  session jit={setting:3}  window {name:9}  median {median:7.1f} ms"
                            f"  best {best:7.1f} ms  ({inserted} of 50 inserted)"
                        )
                    conn.rollback()
        finally:
            cluster.drop(url)
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
