"""Postgres reads and writes. Callers own transactions; nothing here commits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from sync import locks
from sync.errors import UserError
from sync.export_parse import MATCH_TOLERANCE_MS
from sync.transform import AlbumRow, ArtistRow, Play, TrackRow

SOURCE_API = 0


@dataclass(frozen=True)
class User:
    key: int  # user_tokens.id: compact key used by listening_history
    user_id: str  # Spotify user id
    refresh_token: str
    access_token: str | None
    access_token_expires_at: datetime | None
    scope: str | None
    authorized_at: datetime
    status: str
    status_reason: str | None


_USER_COLUMNS = (
    "id, user_id, refresh_token, access_token, access_token_expires_at, scope, "
    "authorized_at, status, status_reason"
)


def load_users(conn: psycopg.Connection, only: Sequence[str] | None = None) -> list[User]:
    """Users to sync; removed users (history kept, no tokens; sql/004) are never loaded."""
    sql = f"select {_USER_COLUMNS} from user_tokens where status <> 'removed'"
    params: tuple = ()
    if only:
        sql += " and user_id = any(%s)"
        params = (list(only),)
    rows = conn.execute(sql + " order by id", params).fetchall()
    return [User(*row) for row in rows]


def last_attempts(conn: psycopg.Connection) -> dict[int, datetime]:
    """When each user was last actually attempted (skips excluded), by user key."""
    rows = conn.execute(
        "select user_id, max(started_at) from sync_run_users "
        "where status <> 'skipped' and started_at is not null group by user_id"
    ).fetchall()
    return dict(rows)


def load_user(conn: psycopg.Connection, key: int) -> User:
    row = conn.execute(f"select {_USER_COLUMNS} from user_tokens where id = %s", (key,)).fetchone()
    if row is None:
        raise LookupError(f"user {key} no longer exists")
    return User(*row)


_ALIAS = re.compile(r"^user-(\d+)$")


@dataclass(frozen=True)
class UserRef:
    """A stored user as commands name it, without its tokens."""

    key: int
    user_id: str  # Spotify user id
    time_zone: str
    status: str


USER_REF_COLUMNS = "id, user_id, time_zone, status"  # UserRef(*row)


def resolve_user(conn: psycopg.Connection, text: str) -> UserRef:
    """The user a command names: by Spotify id, else by the alias user-N that logs show.

    Raises UserError naming the fix when there is none (removed users are found too;
    callers decide what they may do).
    """
    row = conn.execute(
        f"select {USER_REF_COLUMNS} from user_tokens where user_id = %s", (text,)
    ).fetchone()
    match = _ALIAS.match(text)
    if row is None and match:
        row = conn.execute(
            f"select {USER_REF_COLUMNS} from user_tokens where id = %s", (int(match[1]),)
        ).fetchone()
    if row is None:
        raise UserError(
            f"no user {text!r}: python -m sync users lists them (Spotify id or alias user-N)"
        )
    return UserRef(*row)


def save_tokens(
    conn: psycopg.Connection,
    key: int,
    access_token: str,
    expires_at: datetime,
    refresh_token: str | None,
    scope: str | None,
) -> None:
    """Store a refreshed access token; keep the old refresh token when none came back."""
    conn.execute(
        """update user_tokens
              set access_token = %s, access_token_expires_at = %s,
                  refresh_token = coalesce(%s, refresh_token),
                  scope = coalesce(%s, scope), updated_at = now()
            where id = %s""",
        (access_token, expires_at, refresh_token, scope, key),
    )


def mark_needs_reauth(conn: psycopg.Connection, key: int, reason: str) -> None:
    conn.execute(
        """update user_tokens
              set status = 'needs_reauth', status_reason = %s, status_changed_at = now(),
                  access_token = null, access_token_expires_at = null, updated_at = now()
            where id = %s""",
        (reason, key),
    )


def newest_played_at(conn: psycopg.Connection, key: int) -> datetime | None:
    row = conn.execute(
        "select max(played_at) from listening_history where user_id = %s", (key,)
    ).fetchone()
    return row[0]


def try_lock_user(conn: psycopg.Connection, key: int) -> bool:
    """Session-level advisory lock so two overlapping runs never sync one user at once."""
    row = conn.execute("select pg_try_advisory_lock(%s, %s)", (locks.USER, key)).fetchone()
    conn.commit()
    return bool(row[0])


def unlock_user(conn: psycopg.Connection, key: int) -> None:
    conn.execute("select pg_advisory_unlock(%s, %s)", (locks.USER, key))
    conn.commit()


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
        from sync import analytics  # sync.analytics imports this module

        analytics.refresh_tracks(conn, changed)
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


def count_plays(conn: psycopg.Connection, key: int) -> int:
    return conn.execute(
        "select count(*) from listening_history where user_id = %s", (key,)
    ).fetchone()[0]


# -- run records -------------------------------------------------------------
def start_run(conn: psycopg.Connection, trigger: str, run_url: str | None, dry_run: bool) -> int:
    row = conn.execute(
        "insert into sync_runs (trigger, run_url, dry_run) values (%s, %s, %s) returning id",
        (trigger, run_url, dry_run),
    ).fetchone()
    return row[0]


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    status: str,
    totals: dict[str, int],
) -> None:
    conn.execute(
        """update sync_runs set finished_at = now(), status = %s, users_total = %s,
                  users_synced = %s, users_failed = %s, users_skipped = %s, tracks_added = %s
            where id = %s""",
        (
            status,
            totals["users_total"],
            totals["users_synced"],
            totals["users_failed"],
            totals["users_skipped"],
            totals["tracks_added"],
            run_id,
        ),
    )


def record_user_result(
    conn: psycopg.Connection,
    run_id: int,
    key: int,
    *,
    status: str,
    started_at: datetime | None,
    fetched: int,
    new_tracks: int,
    skipped_items: int,
    possible_gap: bool,
    error_class: str | None,
    error: str | None,
    warnings: Sequence[str],
) -> None:
    conn.execute(
        """insert into sync_run_users (run_id, user_id, status, started_at, finished_at, fetched,
                  new_tracks, skipped_items, possible_gap, error_class, error, warnings)
           values (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s, %s)
           on conflict (run_id, user_id) do update set status = excluded.status,
                  finished_at = excluded.finished_at, fetched = excluded.fetched,
                  new_tracks = excluded.new_tracks, skipped_items = excluded.skipped_items,
                  possible_gap = excluded.possible_gap, error_class = excluded.error_class,
                  error = excluded.error, warnings = excluded.warnings""",
        (
            run_id, key, status, started_at, fetched, new_tracks, skipped_items,
            possible_gap, error_class, error, list(warnings),
        ),
    )  # fmt: skip


def user_overview(conn: psycopg.Connection) -> list[tuple]:
    """Per user: id, key, status, reason, last ok sync, plays, token expiry, access expiry."""
    return conn.execute(
        """select u.user_id, u.id, u.status, u.status_reason,
                  (select max(r.finished_at) from sync_run_users r
                    where r.user_id = u.id and r.status = 'ok'),
                  (select count(*) from listening_history h where h.user_id = u.id),
                  u.authorized_at + interval '6 months',
                  u.access_token_expires_at
             from user_tokens u order by u.id"""
    ).fetchall()
