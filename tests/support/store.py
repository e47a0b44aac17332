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


def plays_of(url: str, key: int) -> list[tuple]:
    """(played_at, uri, track, primary artist, ms_played, source, duration_ms) of a user's
    music plays, oldest first: what an export and an import must keep."""
    with psycopg.connect(url) as c:
        return c.execute(
            """select h.played_at, t.uri, t.name, a.name, h.ms_played, h.source, t.duration_ms
                 from listening_history h join tracks t on t.id = h.track_id
                 left join track_artists ta on ta.track_id = t.id and ta.position = 0
                 left join artists a on a.id = ta.artist_id
                where h.user_id = %s order by h.played_at""",
            (key,),
        ).fetchall()


def spoken_of(url: str, key: int) -> list[tuple]:
    """(played_at, kind, uri, show, name, ms_played) of a user's podcast and audiobook plays,
    oldest first."""
    with psycopg.connect(url) as c:
        return c.execute(
            """select p.played_at, i.kind, i.uri, i.show, i.name, p.ms_played
                 from spoken_plays p join spoken_items i on i.id = p.item_id
                where p.user_id = %s order by p.played_at, i.id""",
            (key,),
        ).fetchall()
