"""Writing plays and tracks in tests through the job's own write path (one SQL call)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from sync.store import outcome
from sync.store.plays import track_json
from sync.store.rows import Play, TrackRow


def store_plays(conn: psycopg.Connection, key: int, plays: Sequence[Play]) -> list[datetime]:
    """What a sync stores for these plays (catalogue, history, analytics); the new ones."""
    return outcome.save(conn, key, 0, None, {}, plays)


def upsert_tracks(conn: psycopg.Connection, tracks: Iterable[TrackRow]) -> dict[str, int]:
    """Track uri -> id, creating or completing catalogue rows like a sync does."""
    page = [track_json(t) for t in {t.uri: t for t in tracks}.values()]
    rows = conn.execute("select uri, track_id from catalogue_upsert(%s)", (Jsonb(page),))
    return dict(rows.fetchall())


def refresh_tracks(conn: psycopg.Connection, track_ids: Iterable[int]) -> None:
    conn.execute("select analytics_refresh_tracks(%s::integer[])", (sorted(set(track_ids)),))
