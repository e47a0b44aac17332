"""What `sync import` writes, and the stored plays it reads to decide what to write.

The set logic is SQL (sql/repeatable/25_import.sql, beside `sync run`'s catalogue write
in 20_catalogue.sql): Python sends data, COPYing a file's new refs into a staging table
and its plays into listening_history, and calls one function a step. Everything here
runs in the import's one transaction (sync/history_import/importer.py); nothing commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg

from sync.errors import UserError
from sync.store import users as user_store

log = logging.getLogger(__name__)

LOCK_TIMEOUT = "30s"  # how long a bulk load waits to lock the history's tables


def begin(conn: psycopg.Connection, user_key: int) -> None:
    """Set the import's transaction up: UTC, no statement timeout, the user locked against a
    concurrent sync, the staging tables created."""
    conn.execute("set local time zone 'UTC'")  # export times without a zone are UTC
    conn.execute("set local statement_timeout = 0")
    user_store.lock_for_change(conn, user_key, "import")  # never beside a sync
    conn.execute("select catalogue_import_stage()")


def stored_plays_estimate(conn: psycopg.Connection) -> float:
    """The planner's estimate of listening_history's rows (every user's): cheap, no scan."""
    return conn.execute(
        "select greatest(reltuples, 0) from pg_class where oid = 'listening_history'::regclass"
    ).fetchone()[0]


def resolve_tracks(conn: psycopg.Connection, refs: Iterable[tuple], bulk: bool) -> dict[str, int]:
    """tracks.id of each (ref, kind, track, artist, album): found by URI or names, or created
    (with album and artist). Two round trips whatever the number of refs."""
    with conn.cursor().copy("copy import_refs (ref, kind, track, artist, album) from stdin") as c:
        for row in refs:
            c.write_row(row)
    return dict(conn.execute("select * from catalogue_import_tracks(%s)", (bulk,)).fetchall())


def stored_between(
    conn: psycopg.Connection, user_key: int, lo: datetime, hi: datetime
) -> list[tuple[int, int, int, int | None]]:
    """(played_at in ms since the epoch, track id, source, ms_played) of the user's stored
    plays between two times."""
    return conn.execute(
        """select (extract(epoch from played_at) * 1000)::bigint, track_id, source, ms_played
             from listening_history
            where user_id = %s and played_at between %s and %s""",
        (user_key, lo, hi),
    ).fetchall()


def track_names(conn: psycopg.Connection, track_ids: list[int]) -> list[tuple]:
    """(track id, name, primary artist's name) of these tracks: what song_key reads."""
    return conn.execute(
        """select t.id, t.name, a.name from tracks t
             left join track_artists ta on ta.track_id = t.id and ta.position = 0
             left join artists a on a.id = ta.artist_id
            where t.id = any(%s)""",
        (track_ids,),
    ).fetchall()


def copy_plays(conn: psycopg.Connection, lines: Sequence[str]) -> None:
    """COPY plays, tab-separated `user_id played_at track_id ms_played source` lines, into
    listening_history. Raises psycopg.DataError on a value Postgres cannot read."""
    with conn.cursor().copy(
        "copy listening_history (user_id, played_at, track_id, ms_played, source) from stdin"
    ) as copy:
        copy.write("".join(lines).encode())


def merge(
    conn: psycopg.Connection,
    user_key: int,
    fill: Sequence[tuple[datetime, int]],
    replace: Sequence[datetime],
) -> list[datetime]:
    """Give stored Web API plays the export's ms_played (fill: played_at, ms) and delete the
    account-data plays the extended history replaces; the played_at of each changed play."""
    if not fill and not replace:
        return []
    rows = conn.execute(
        "select * from history_import_merge(%s, %s::timestamptz[], %s::integer[], "
        "%s::timestamptz[])",
        (user_key, [at for at, _ in fill], [ms for _, ms in fill], list(replace)),
    ).fetchall()
    return [r[0] for r in rows]


def suspend_foreign_keys(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """Drop the foreign keys of listening_history, tracks and track_artists for a bulk load;
    what was dropped, for restore_foreign_keys. A one-line error when the tables are busy."""
    conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        keys = conn.execute("select * from history_import_drop_keys()").fetchall()
    except psycopg.errors.LockNotAvailable:
        raise UserError(
            "listening_history is in use by another session (a running sync or an open "
            "query) and could not be locked for the bulk load: try again in a minute"
        ) from None
    conn.execute("set local lock_timeout = 0")
    return keys


def restore_foreign_keys(conn: psycopg.Connection, keys: list[tuple[str, str, str]]) -> None:
    """Add the suspended foreign keys back, which validates every row."""
    if keys:
        tables, names, definitions = (list(column) for column in zip(*keys, strict=True))
        conn.execute("select history_import_add_keys(%s, %s, %s)", (tables, names, definitions))
