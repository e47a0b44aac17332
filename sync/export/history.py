"""The export's typed entry point: which plays, which format, which file."""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from sync.errors import UserError
from sync.export import query
from sync.export.output import atomic_file
from sync.export.spotify import SpotifyStats, bodies, interleave, spoken_bodies, write_zip
from sync.export.table import write_csv

log = logging.getLogger(__name__)

FORMATS = ("spotify", "csv")


class NoPlays(UserError):
    """The user has no plays in the period: nothing is written."""


@dataclass
class ExportResult:
    """What an export wrote: counts only (no names), for the command's summary."""

    path: Path
    format: str
    plays: int
    files: dict[str, int] = field(default_factory=dict)  # zip member -> entries (spotify)
    estimated: int = 0
    moved: int = 0
    short: int = 0
    short_estimated: int = 0
    episodes: int = 0
    chapters: int = 0


def export_history(
    conn: psycopg.Connection,
    user_key: int,
    out: Path,
    *,
    fmt: str = "spotify",
    since: datetime | None = None,
    until: datetime | None = None,
    itersize: int = query.ITERSIZE,
) -> ExportResult:
    """Export the plays of user `user_key` ending in [since, until) to `out`, or raise.

    Raises NoPlays (an empty period: no file) or UserError (an unwritable `out`: no file).
    Reads only, in one read-only repeatable-read transaction when the connection is idle
    (else inside the caller's, as a savepoint); the rows stream from a server-side cursor.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: {' or '.join(FORMATS)}")
    lo = since if since is not None else query.EARLIEST
    hi = until if until is not None else query.LATEST
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    saved = (conn.isolation_level, conn.read_only)
    if outermost:  # one snapshot for the counts, the tracks and the plays; and no writes
        conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
    try:
        result = _export(conn, user_key, out, fmt, lo, hi, itersize)
    finally:
        if outermost:
            conn.isolation_level, conn.read_only = saved
    log.debug("export: %d plays into %s", result.plays, out)
    return result


def _export(
    conn: psycopg.Connection, user_key: int, out: Path, fmt: str, lo, hi, itersize: int
) -> ExportResult:
    """Count, then write; the plays come from the same snapshot as the counts."""
    with conn.transaction():
        query.no_jit(conn)
        # the CSV is music only: a period of episodes alone has nothing for it
        years = query.year_counts(conn, user_key, lo, hi, spoken=fmt != "csv")
        if not years:
            raise NoPlays("no plays in that period")
        with atomic_file(out) as fh:
            if fmt == "csv":
                user_id = _spotify_id(conn, user_key)
                tracks = query.csv_tracks(conn, user_key, lo, hi)
                with query.prefetched(query.csv_plays(conn, user_key, lo, hi, itersize)) as rows:
                    plays = write_csv(fh, user_id, tracks, rows)
                result = ExportResult(out, fmt, plays)
            else:
                with closing(query.spotify_tracks(conn, user_key, lo, hi)) as rows:
                    tracks = bodies(rows)
                spoken, items = query.spoken(conn, user_key, lo, hi)
                tracks.update(spoken_bodies(items))
                plays = query.spotify_plays(conn, user_key, lo, hi, itersize)
                with query.prefetched(plays) as rows:
                    stats = write_zip(fh, tracks, interleave(rows, spoken), years)
                result = _from_stats(out, stats)
    return result


def _spotify_id(conn: psycopg.Connection, user_key: int) -> str:
    row = conn.execute("select user_id from user_tokens where id = %s", (user_key,)).fetchone()
    if row is None:
        raise UserError(f"no user with key {user_key}")
    return row[0]


def _from_stats(out: Path, stats: SpotifyStats) -> ExportResult:
    return ExportResult(
        path=out,
        format="spotify",
        plays=stats.plays,
        files=dict(stats.files),
        estimated=stats.estimated,
        moved=stats.moved,
        short=stats.short,
        short_estimated=stats.short_estimated,
        episodes=stats.episodes,
        chapters=stats.chapters,
    )
