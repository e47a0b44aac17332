"""The export's reads: one user's plays in end-time order from a server-side cursor, and the
tracks they name, read once.

Plays stream as a few integers each (end time, track id, listening time); names, album and
URI come from one read of the user's distinct tracks, so the big scan needs no join or sort
and memory grows with the tracks (about 300 bytes each), never with the plays.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

import psycopg

# Rows fetched per round trip of the server-side cursor: memory stays at a few such batches.
ITERSIZE = 20_000
PREFETCH = 2  # batches fetched ahead, while the ones before are written

# No bound given: the whole history (timestamptz accepts these).
EARLIEST = "-infinity"
LATEST = "infinity"

_PERIOD = "user_id = %(user)s and played_at >= %(lo)s and played_at < %(hi)s"

# ms_played of a Web API play (null in the table) is the analytics' estimate, computed by the
# same SQL function (analytics_play_ms, sql/repeatable/30_analytics_write.sql): the track's
# length, capped by the time since the user's previous play ended. The previous play may lie
# before the period, so the window starts at the last play before it. (The index scan gives
# the order: no sort; jit off, it would only compile.)
_SPOTIFY_PLAYS = """
select floor(date_part('epoch', h.played_at))::bigint,
       to_char(h.played_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       h.track_id,
       coalesce(h.ms_played, analytics_play_ms(
           null, (select t.duration_ms from tracks t where t.id = h.track_id), h.gap_ms)),
       h.ms_played is null
  from (select played_at, track_id, ms_played,
               round(date_part('epoch', played_at - lag(played_at) over (order by played_at))
                     * 1000)::bigint as gap_ms
          from listening_history
         where user_id = %(user)s
           and played_at >= coalesce((select max(played_at) from listening_history
                                       where user_id = %(user)s and played_at < %(lo)s),
                                     %(lo)s)
           and played_at < %(hi)s) h
 where h.played_at >= %(lo)s
 order by h.played_at
"""

# Track id -> (name, primary artist, album, uri), for the tracks of the period's plays.
_SPOTIFY_TRACKS = f"""
select t.id, t.name, pa.name, al.name, t.uri
  from tracks t
  left join albums al on al.id = t.album_id
  left join track_artists ta on ta.track_id = t.id and ta.position = 0
  left join artists pa on pa.id = ta.artist_id
 where t.id in (select distinct track_id from listening_history where {_PERIOD})
"""

# The columns of the `plays` view (sql/repeatable/50_views.sql), in its order.
CSV_COLUMNS = ("spotify_user_id", "played_at", "track", "artists", "album", "ms_played",
               "duration_ms", "track_uri", "source")  # fmt: skip
_CSV_PLAYS = f"""
select to_char(played_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       track_id, ms_played, source
  from listening_history
 where {_PERIOD}
 order by played_at
"""
# Track id -> (track, artists, album, duration_ms, track_uri), as the view writes them.
_CSV_TRACKS = f"""
select t.id, t.name,
       (select string_agg(a.name, ', ' order by ta.position)
          from track_artists ta join artists a on a.id = ta.artist_id
         where ta.track_id = t.id),
       al.name, t.duration_ms, t.uri
  from tracks t
  left join albums al on al.id = t.album_id
 where t.id in (select distinct track_id from listening_history where {_PERIOD})
"""


# Podcast episodes and audiobook chapters (spoken_plays, sql/009_spoken_plays.sql), in the
# plays' shape with the item's id negated, so one mapping of bodies serves both. Read whole:
# they are a small part of a history (a podcast a day is 365 rows a year).
_SPOKEN_PLAYS = f"""
select floor(date_part('epoch', played_at))::bigint,
       to_char(played_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       -item_id, ms_played, false
  from spoken_plays
 where {_PERIOD}
 order by played_at, item_id
"""
# Item id -> (kind, uri, show or book, episode or chapter) of the period's spoken plays.
_SPOKEN_ITEMS = f"""
select i.id, i.kind, i.uri, i.show, i.name
  from spoken_items i
 where i.id in (select distinct item_id from spoken_plays where {_PERIOD})
"""


def year_counts(
    conn: psycopg.Connection,
    user: int,
    lo: datetime | str,
    hi: datetime | str,
    *,
    spoken: bool = True,
) -> dict[str, int]:
    """Plays of the user in [lo, hi) by UTC year ('2024': n), episodes and chapters among
    them unless `spoken` is false (the CSV: music only): counted first, so an empty period
    writes no file and a year too large for one file is known before it is written."""
    also = f" union all select played_at from spoken_plays where {_PERIOD}" if spoken else ""
    rows = conn.execute(
        "select to_char(played_at at time zone 'UTC', 'YYYY'), count(*)"
        f" from (select played_at from listening_history where {_PERIOD}{also}) p group by 1",
        {"user": user, "lo": lo, "hi": hi},
    ).fetchall()
    return {year: int(n) for year, n in rows}


# Every statement the export runs, by name (stream() takes the name, so each is a constant
# here that tests/support/sql_writes.py can read: all of them select).
_QUERIES = {
    "spotify_plays": _SPOTIFY_PLAYS,
    "spotify_tracks": _SPOTIFY_TRACKS,
    "csv_plays": _CSV_PLAYS,
    "csv_tracks": _CSV_TRACKS,
    "spoken_plays": _SPOKEN_PLAYS,
    "spoken_items": _SPOKEN_ITEMS,
}
# JIT would only compile (the scan's cost estimate is high, its work simple): off for this
# transaction. set_config(..., true) is `set local`, as a select.
_NO_JIT = "select set_config('jit', 'off', true)"


def no_jit(conn: psycopg.Connection) -> None:
    """JIT off for the rest of the export's transaction: once, before its first query."""
    conn.execute(_NO_JIT)


def stream(
    conn: psycopg.Connection,
    query: str,
    params: dict,
    itersize: int = ITERSIZE,
    name: str = "sync_export",
) -> Iterator[list[tuple]]:
    """Batches of rows of _QUERIES[query] from a server-side cursor (never the whole
    history in memory)."""
    sql = _QUERIES[query]
    with conn.cursor(name=name, binary=True) as cur:
        cur.execute(sql, params)
        while batch := cur.fetchmany(itersize):
            yield batch


def _tracks(conn: psycopg.Connection, query: str, params: dict) -> Iterator[tuple]:
    for batch in stream(conn, query, params, name="sync_export_tracks"):
        yield from batch


def spotify_tracks(conn: psycopg.Connection, user: int, lo, hi) -> Iterator[tuple]:
    """(track id, name, primary artist, album, uri) of each track played in [lo, hi)."""
    return _tracks(conn, "spotify_tracks", {"user": user, "lo": lo, "hi": hi})


def spotify_plays(conn: psycopg.Connection, user: int, lo, hi, itersize: int = ITERSIZE):
    """(epoch second, ts, track id, ms_played or its estimate, estimated) in end-time order."""
    return stream(conn, "spotify_plays", {"user": user, "lo": lo, "hi": hi}, itersize)


def spoken(conn: psycopg.Connection, user: int, lo, hi) -> tuple[list[tuple], list[tuple]]:
    """(the spoken plays in spotify_plays' shape, in end-time order; their items' rows)."""
    params = {"user": user, "lo": lo, "hi": hi}
    plays = [row for batch in stream(conn, "spoken_plays", params, name="sync_export_spoken")
             for row in batch]  # fmt: skip
    return plays, list(_tracks(conn, "spoken_items", params))


def csv_tracks(conn: psycopg.Connection, user: int, lo, hi) -> dict[int, tuple]:
    """Track id -> (track, artists, album, duration_ms, track_uri), the view's values."""
    rows = _tracks(conn, "csv_tracks", {"user": user, "lo": lo, "hi": hi})
    return {row[0]: row[1:] for row in rows}


def csv_plays(conn: psycopg.Connection, user: int, lo, hi, itersize: int = ITERSIZE):
    """(played_at text, track id, ms_played, source) in end-time order."""
    return stream(conn, "csv_plays", {"user": user, "lo": lo, "hi": hi}, itersize)


@contextmanager
def prefetched(
    batches: Generator[list, None, None], depth: int = PREFETCH
) -> Iterator[Iterator[list]]:
    """The batches, fetched ahead in a thread while the caller writes the ones before.

    Waiting for Postgres releases the GIL, so the query and the formatting overlap (the
    export takes about a third less time). At most `depth` batches wait; the cursor is
    closed in the thread that used it, and the thread has ended when the block does, so the
    caller's transaction never ends under a running fetch.
    """
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    break
                waiting.put((batch, None))
            waiting.put((None, None))
        except BaseException as exc:  # handed to the caller's thread
            waiting.put((None, exc))
        finally:
            batches.close()

    def consume() -> Iterator[list]:
        while True:
            batch, exc = waiting.get()
            if exc is not None:
                raise exc
            if batch is None:
                return
            yield batch

    worker = threading.Thread(target=produce, name="export-fetch", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        while worker.is_alive():  # free a blocked put, so the thread sees `stop`
            with suppress(queue.Empty):
                waiting.get(timeout=0.05)
        worker.join()
