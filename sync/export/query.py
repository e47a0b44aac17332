"""The export's reads: one user's plays in end-time order, from a server-side cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import psycopg

# Rows fetched per round trip of the server-side cursor: memory stays at this many rows.
ITERSIZE = 20_000

# ms_played of a Web API play (null in the table) is the analytics' estimate, computed by the
# same SQL function (analytics_play_ms, sql/repeatable/30_analytics_write.sql): the track's
# length, capped by the time since the user's previous play ended. The previous play may lie
# before the period, so the window starts at the last play before it.
_SPOTIFY_ROWS = """
select floor(date_part('epoch', h.played_at))::bigint,
       to_char(h.played_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       t.name, pa.name, al.name,
       analytics_play_ms(h.ms_played, t.duration_ms, h.gap_ms),
       h.ms_played is null,
       t.uri
  from (select played_at, track_id, ms_played,
               round(date_part('epoch', played_at - lag(played_at) over (order by played_at))
                     * 1000)::bigint as gap_ms
          from listening_history
         where user_id = %(user)s
           and played_at >= coalesce((select max(played_at) from listening_history
                                       where user_id = %(user)s and played_at < %(lo)s),
                                     %(lo)s)
           and played_at < %(hi)s) h
  join tracks t on t.id = h.track_id
  left join albums al on al.id = t.album_id
  left join track_artists ta on ta.track_id = t.id and ta.position = 0
  left join artists pa on pa.id = ta.artist_id
 where h.played_at >= %(lo)s
 order by h.played_at
"""

# The columns of the `plays` view (sql/repeatable/50_views.sql), in its order; the view
# filtered by its user key would not use the history's primary key, so this is the view's
# select with the user's key.
CSV_COLUMNS = ("spotify_user_id", "played_at", "track", "artists", "album", "ms_played",
               "duration_ms", "track_uri", "source")  # fmt: skip
_CSV_ROWS = """
select u.user_id,
       to_char(h.played_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       t.name,
       (select string_agg(a.name, ', ' order by ta.position)
          from track_artists ta join artists a on a.id = ta.artist_id
         where ta.track_id = t.id),
       al.name, h.ms_played, t.duration_ms, t.uri, h.source
  from listening_history h
  join user_tokens u on u.id = h.user_id
  join tracks t on t.id = h.track_id
  left join albums al on al.id = t.album_id
 where h.user_id = %(user)s and h.played_at >= %(lo)s and h.played_at < %(hi)s
 order by h.played_at
"""

# No bound given: the whole history (timestamptz accepts these).
EARLIEST = "-infinity"
LATEST = "infinity"


def count_plays(conn: psycopg.Connection, user: int, lo: datetime | str, hi: datetime | str) -> int:
    """Plays of the user in [lo, hi): checked first, so an empty period writes no file."""
    row = conn.execute(
        "select count(*) from listening_history"
        " where user_id = %s and played_at >= %s and played_at < %s",
        (user, lo, hi),
    ).fetchone()
    return int(row[0]) if row else 0


def stream(
    conn: psycopg.Connection,
    sql: str,
    params: dict,
    itersize: int = ITERSIZE,
) -> Iterator[list[tuple]]:
    """Batches of rows from a server-side cursor (never the whole history in memory)."""
    with conn.cursor(name="sync_export") as cur:
        cur.execute(sql, params)
        while batch := cur.fetchmany(itersize):
            yield batch


def spotify_rows(conn: psycopg.Connection, user: int, lo, hi, itersize: int = ITERSIZE):
    """(epoch second, ts, track, primary artist, album, ms_played or estimate, estimated, uri)."""
    return stream(conn, _SPOTIFY_ROWS, {"user": user, "lo": lo, "hi": hi}, itersize)


def csv_rows(conn: psycopg.Connection, user: int, lo, hi, itersize: int = ITERSIZE):
    """Rows of the `plays` view for one user, CSV_COLUMNS in order."""
    return stream(conn, _CSV_ROWS, {"user": user, "lo": lo, "hi": hi}, itersize)
