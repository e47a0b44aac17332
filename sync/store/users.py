"""Users and their tokens: the only module that reads or writes user_tokens.

Callers own transactions; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from sync import locks
from sync.errors import UserError
from sync.names import parse_alias


@dataclass(frozen=True)
class User:
    key: int  # user_tokens.id: compact key used by listening_history
    user_id: str  # Spotify user id
    refresh_token: str = field(repr=False)
    access_token: str | None = field(repr=False)
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


def load_user(conn: psycopg.Connection, key: int) -> User:
    row = conn.execute(f"select {_USER_COLUMNS} from user_tokens where id = %s", (key,)).fetchone()
    if row is None:
        raise LookupError(f"user {key} no longer exists")
    return User(*row)


@dataclass(frozen=True)
class UserRef:
    """A stored user as commands name it, without its tokens."""

    key: int
    user_id: str  # Spotify user id
    time_zone: str
    status: str


USER_REF_COLUMNS = "id, user_id, time_zone, status"  # UserRef(*row)


def all_users(conn: psycopg.Connection) -> list[UserRef]:
    """Every stored user, removed ones included, as commands name them."""
    rows = conn.execute(f"select {USER_REF_COLUMNS} from user_tokens order by id").fetchall()
    return [UserRef(*row) for row in rows]


def resolve_user(conn: psycopg.Connection, text: str) -> UserRef:
    """The user a command names: by Spotify id, else by the alias user-N that logs show.

    Raises UserError naming the fix when there is none (removed users are found too;
    callers decide what they may do).
    """
    row = conn.execute(
        f"select {USER_REF_COLUMNS} from user_tokens where user_id = %s", (text,)
    ).fetchone()
    key = parse_alias(text)
    if row is None and key is not None:
        row = conn.execute(
            f"select {USER_REF_COLUMNS} from user_tokens where id = %s", (key,)
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


def set_time_zone(conn: psycopg.Connection, key: int, zone: str) -> None:
    conn.execute(
        "update user_tokens set time_zone = %s, updated_at = now() where id = %s", (zone, key)
    )


def mark_needs_reauth(conn: psycopg.Connection, key: int, reason: str) -> None:
    conn.execute(
        """update user_tokens
              set status = 'needs_reauth', status_reason = %s, status_changed_at = now(),
                  access_token = null, access_token_expires_at = null, updated_at = now()
            where id = %s""",
        (reason, key),
    )


def try_lock_user(conn: psycopg.Connection, key: int) -> bool:
    """Session-level advisory lock so two overlapping runs never sync one user at once."""
    row = conn.execute("select pg_try_advisory_lock(%s, %s)", (locks.USER, key)).fetchone()
    conn.commit()
    return bool(row[0])


def unlock_user(conn: psycopg.Connection, key: int) -> None:
    conn.execute("select pg_advisory_unlock(%s, %s)", (locks.USER, key))
    conn.commit()


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


def store_login(
    conn: psycopg.Connection,
    user_id: str,
    refresh_token: str,
    access_token: str,
    access_expires_at: datetime,
    scope: str,
    now: datetime,
) -> tuple[int, bool, str | None, str | None]:
    """Create or update the user: new tokens, authorized now, active again.

    Returns (key, created, previous status, previous reason). The caller commits.
    """
    before = conn.execute(
        "select status, status_reason from user_tokens where user_id = %s for update",
        (user_id,),
    ).fetchone()
    row = conn.execute(
        """insert into user_tokens as u (user_id, refresh_token, access_token,
                  access_token_expires_at, scope, authorized_at, status, status_reason,
                  status_changed_at, created_at, updated_at)
           values (%(user)s, %(refresh)s, %(access)s, %(expires)s, %(scope)s, %(now)s,
                   'active', null, %(now)s, %(now)s, %(now)s)
           on conflict (user_id) do update set
                  refresh_token = excluded.refresh_token,
                  access_token = excluded.access_token,
                  access_token_expires_at = excluded.access_token_expires_at,
                  scope = excluded.scope,
                  authorized_at = excluded.authorized_at,
                  status = 'active',
                  status_reason = null,
                  status_changed_at = case when u.status <> 'active'
                                           then excluded.status_changed_at
                                           else u.status_changed_at end,
                  updated_at = excluded.updated_at
           returning id""",
        {
            "user": user_id,
            "refresh": refresh_token,
            "access": access_token,
            "expires": access_expires_at,
            "scope": scope,
            "now": now,
        },
    ).fetchone()
    if before is None:
        return row[0], True, None, None
    return row[0], False, before[0], before[1]


def remove_user(conn: psycopg.Connection, key: int, keep_history: bool) -> int:
    """Delete the user and all their data, or (keep_history) erase tokens and stop syncing.

    Returns the number of plays deleted (0 when kept). One transaction; the caller's.
    Deleting cascades to listening_history, sync_run_users and the analytics tables.
    """
    locked = conn.execute("select pg_try_advisory_xact_lock(%s, %s)", (locks.USER, key)).fetchone()[
        0
    ]
    if not locked:
        raise UserError(
            "a sync run is working on this user right now: try again when it has finished"
        )
    if keep_history:
        conn.execute(
            """update user_tokens
                  set status = 'removed', status_reason = 'removed by the owner; history kept',
                      status_changed_at = now(), refresh_token = null, access_token = null,
                      access_token_expires_at = null, scope = null, updated_at = now()
                where id = %s""",
            (key,),
        )
        return 0
    plays = conn.execute(
        "with gone as (delete from listening_history where user_id = %s returning 1) "
        "select count(*) from gone",
        (key,),
    ).fetchone()[0]
    conn.execute("delete from user_tokens where id = %s", (key,))
    return plays
