"""Plays and the catalogue (tracks, albums, artists). Callers own transactions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from sync.job.transform import AlbumRow, ArtistRow, Play, TrackRow
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


def _upsert_keys(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Iterable[tuple]
) -> tuple[dict[str, int], set[int]]:
    """Insert rows keyed by uri (first column) that are missing.

    Returns uri -> id for all of them, and the ids of the rows this call inserted.
    """
    unique: dict[str, tuple] = {}
    for row in rows:
        unique.setdefault(row[0], row)
    if not unique:
        return {}, set()
    # Insert in uri order: concurrent users sharing artists/albums/tracks then take row
    # locks in the same order, so their transactions cannot deadlock each other.
    cols = list(zip(*(unique[uri] for uri in sorted(unique)), strict=True))
    casts = ", ".join(f"%s::{t}[]" for t in _TYPES[table])
    # One round trip: the new rows come back from the insert, the existing ones from
    # the select (one snapshot, so no row is listed twice).
    found = conn.execute(
        f"with new as (insert into {table} ({', '.join(columns)}) "
        f"select * from unnest({casts}) on conflict (uri) do nothing returning uri, id) "
        f"select uri, id, true from new union all "
        f"select uri, id, false from {table} where uri = any(%s)",
        [*(list(c) for c in cols), list(unique)],
    ).fetchall()
    ids = {uri: key for uri, key, _ in found}
    created = {key for _, key, new in found if new}
    missing = [uri for uri in unique if uri not in ids]
    if missing:  # committed by a concurrent run after this statement's snapshot was taken
        ids.update(
            conn.execute(f"select uri, id from {table} where uri = any(%s)", (missing,)).fetchall()
        )
    return ids, created


_TYPES = {
    "artists": ("text", "text", "text"),
    "albums": ("text", "text", "text", "text", "text", "text"),
    "tracks": (
        "text", "text", "text", "integer", "integer", "boolean", "boolean", "text",
        "smallint", "smallint",
    ),
}  # fmt: skip


def _track_json(t: TrackRow) -> dict:
    """What adopt_export_placeholders reads (dataclasses.asdict is slow)."""
    album = t.album
    return {
        "uri": t.uri, "spotify_id": t.spotify_id, "name": t.name, "duration_ms": t.duration_ms,
        "explicit": t.explicit, "isrc": t.isrc, "track_number": t.track_number,
        "disc_number": t.disc_number,
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


def upsert_tracks(conn: psycopg.Connection, tracks: Iterable[TrackRow]) -> dict[str, int]:
    """Make sure every track with its album and artists exists; return track uri -> id.

    A stored track can gain its length, album or further artists here (an export
    import knew none of them, or only the first artist): the analytics of its plays
    are then refreshed in the caller's transaction.
    """
    tracks = list({t.uri: t for t in tracks}.values())
    if not tracks:
        return {}
    # Rows an export import created from names take on the real identity and the
    # length and album only the Web API knows (sql/003); returns the completed ids
    # (None from the version of sql/003 that returned void).
    fetched = Jsonb([_track_json(t) for t in tracks])
    completed = conn.execute("select adopt_export_placeholders(%s)", (fetched,)).fetchone()[0]
    changed = set(completed or ())
    artists: list[ArtistRow] = [a for t in tracks for a in t.artists]
    albums: list[AlbumRow] = [t.album for t in tracks if t.album is not None]
    artist_ids, _ = _upsert_keys(
        conn, "artists", ("uri", "spotify_id", "name"),
        ((a.uri, a.spotify_id, a.name) for a in artists),
    )  # fmt: skip
    album_ids, _ = _upsert_keys(
        conn,
        "albums",
        ("uri", "spotify_id", "name", "album_type", "release_date", "image_url"),
        ((a.uri, a.spotify_id, a.name, a.album_type, a.release_date, a.image_url) for a in albums),
    )
    track_ids, created = _upsert_keys(
        conn,
        "tracks",
        (
            "uri", "spotify_id", "name", "album_id", "duration_ms", "explicit", "is_local",
            "isrc", "track_number", "disc_number",
        ),
        (
            (
                t.uri, t.spotify_id, t.name, album_ids.get(t.album.uri) if t.album else None,
                t.duration_ms, t.explicit, t.is_local, t.isrc, t.track_number, t.disc_number,
            )
            for t in tracks
        ),
    )  # fmt: skip
    links = sorted(
        (track_ids[t.uri], pos, artist_ids[a.uri])
        for t in tracks
        for pos, a in enumerate(dict.fromkeys(t.artists))
    )
    if links:
        tid, pos, aid = zip(*links, strict=True)
        linked = conn.execute(
            "insert into track_artists (track_id, position, artist_id) "
            "select * from unnest(%s::integer[], %s::smallint[], %s::integer[]) "
            "on conflict do nothing returning track_id",
            (list(tid), list(pos), list(aid)),
        ).fetchall()
        # A track stored before this call that gained artists (usually none).
        changed.update(key for (key,) in linked if key not in created)
    if changed:
        refresh_tracks(conn, changed)
    return track_ids


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
