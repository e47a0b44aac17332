"""Plays and the catalogue (tracks, albums, artists). Callers own transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from sync.store.rows import Play, TrackRow
from sync.store.sources import MATCH_TOLERANCE_MS, SOURCE_API


def count_plays(conn: psycopg.Connection, key: int) -> int:
    return conn.execute(
        "select count(*) from listening_history where user_id = %s", (key,)
    ).fetchone()[0]


def newest_played_at(conn: psycopg.Connection, key: int) -> datetime | None:
    row = conn.execute(
        "select max(played_at) from listening_history where user_id = %s", (key,)
    ).fetchone()
    return row[0]


def track_json(t: TrackRow) -> dict:
    """One track as catalogue_upsert reads it (dataclasses.asdict is slow)."""
    album = t.album
    return {
        "uri": t.uri, "spotify_id": t.spotify_id, "name": t.name, "duration_ms": t.duration_ms,
        "explicit": t.explicit, "isrc": t.isrc, "track_number": t.track_number,
        "disc_number": t.disc_number, "is_local": t.is_local,
        "album": None if album is None else {
            "uri": album.uri, "spotify_id": album.spotify_id, "name": album.name,
            "album_type": album.album_type, "release_date": album.release_date,
            "image_url": album.image_url,
        },
        "artists": [{"uri": a.uri, "spotify_id": a.spotify_id, "name": a.name}
                    for a in t.artists],
    }  # fmt: skip


def refresh_tracks(conn: psycopg.Connection, track_ids: Iterable[int]) -> None:
    """Refresh every user's analytics days holding plays of these tracks.

    Called when a stored track's length, album or artists change: the aggregates of its
    plays depend on them (estimates, album and artist figures). The work is in SQL.
    """
    ids = sorted(set(track_ids))
    if ids:
        conn.execute("select analytics_refresh_tracks(%s::integer[])", (ids,))


def catalogue_upsert(conn: psycopg.Connection, tracks: Iterable[TrackRow]) -> list[tuple]:
    """(track uri, id, completed) of each distinct track: SQL catalogue_upsert, one call."""
    page = [track_json(t) for t in {t.uri: t for t in tracks}.values()]
    if not page:
        return []
    return conn.execute(
        "select uri, track_id, completed from catalogue_upsert(%s)", (Jsonb(page),)
    ).fetchall()


def upsert_tracks(conn: psycopg.Connection, tracks: Iterable[TrackRow]) -> dict[str, int]:
    """Make sure every track with its album and artists exists; return track uri -> id.

    One round trip (sql/repeatable/20_catalogue.sql catalogue_upsert): placeholders an
    export import created take on their identity or merge into the real rows, a stored
    track can gain its length, album or real artists, and the analytics of its plays are
    then refreshed, all in the caller's transaction.
    """
    return {uri: key for uri, key, _ in catalogue_upsert(conn, tracks)}


def insert_plays(
    conn: psycopg.Connection, key: int, plays: Sequence[Play], source: int = SOURCE_API
) -> list[datetime]:
    """Insert plays that are not stored yet; return the played_at of each new row."""
    if not plays:
        return []
    # Most of an hourly window is stored already: skip those before touching the
    # dimension tables (saves several statements per user on every run).
    stored = set(
        r[0]
        for r in conn.execute(
            "select played_at from listening_history where user_id = %s and played_at = any(%s)",
            (key, list({p.played_at for p in plays})),
        )
    )
    plays = [p for p in plays if p.played_at not in stored]
    if not plays:
        return []
    track_ids = upsert_tracks(conn, (p.track for p in plays))
    by_time = {p.played_at: track_ids[p.track.uri] for p in plays}
    rows = conn.execute(
        """insert into listening_history (user_id, played_at, track_id, source)
           select %s, t, k, %s  -- minus plays an export import holds already (sql/003)
             from history_api_plays_to_insert(%s, %s::timestamptz[], %s::integer[], %s) as u(t, k)
           on conflict (user_id, played_at) do nothing
           returning played_at""",
        (key, source, key, list(by_time), list(by_time.values()), MATCH_TOLERANCE_MS),
    ).fetchall()
    return [r[0] for r in rows]
