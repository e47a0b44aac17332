"""Plays and the catalogue (tracks, albums, artists).

The write itself is one SQL call (sync.store.outcome, sql/repeatable/60_sync.sql, which
calls catalogue_upsert in 20_catalogue.sql); this module counts plays and shapes a
track the way that SQL reads it.
"""

from __future__ import annotations

import psycopg

from sync.store.rows import TrackRow


def count_plays(conn: psycopg.Connection, key: int) -> int:
    return conn.execute(
        "select count(*) from listening_history where user_id = %s", (key,)
    ).fetchone()[0]


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
