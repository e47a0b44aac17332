"""Users and their tokens: the only module that reads or writes user_tokens.

Callers own transactions; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from sync.errors import UserError
from sync.names import parse_alias
from sync.statuses import Outcome, UserStatus


@dataclass(frozen=True)
class User:
    """A user's state as the job read it, under the user's lease (see claim)."""

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


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _USER_COLUMNS.split(","))


def load_user(conn: psycopg.Connection, key: int) -> User | None:
    """The user's current row (None when it was deleted)."""
    row = conn.execute(f"select {_USER_COLUMNS} from user_tokens where id = %s", (key,)).fetchone()
    return None if row is None else User(*row)


# -- leases: who may sync a user right now -----------------------------------------
# A run (or an import) that works on a user first claims it: user_tokens.lease_run names
# the holder and lease_until says until when. A claim is one UPDATE, so it reads the
# row's latest committed state and takes the user atomically; it works through any
# connection pooler (unlike session advisory locks), and a killed run's claims simply
# expire. The holder's final write (sync.store.outcome) releases the claim in the same
# transaction.


@dataclass(frozen=True)
class Claim:
    """The answer to claim(): the user's fresh state when claimed, else why not."""

    user: User | None  # set when this holder now has the user
    status: str | None  # the row's status; None when the user no longer exists
    held_until: datetime | None  # another holder's lease end when the user is busy
    # end times of the user's newest stored plays, newest first: at most RECENT_PLAYS
    recent_played_at: tuple[datetime, ...] = ()

    @property
    def busy(self) -> bool:
        return self.user is None and self.status == UserStatus.ACTIVE

    @property
    def newest_played_at(self) -> datetime | None:
        return self.recent_played_at[0] if self.recent_played_at else None


# Spotify's window of recently played tracks: the claim reads as many stored end times,
# so that the write need not send the plays of the window that are stored already.
RECENT_PLAYS = 50


# Spotify ends a sign-in this many calendar months after it was given; refreshing does not
# extend it. The job's expiry warnings and `users`' token column both count from it.
REFRESH_TOKEN_LIFETIME_MONTHS = 6
LEASE = timedelta(minutes=15)  # how long a claim on a user lasts if its holder dies


def claim(conn: psycopg.Connection, key: int, holder: int, lease: timedelta) -> Claim:
    """Take the user for `holder` until now + lease, and read its state: one round trip.

    Only active users are claimed; a lease this holder already has is renewed (a retry
    after a dropped connection), an expired one is taken over.
    """
    row = conn.execute(
        f"""with target as (
               select id from user_tokens
                where id = %(key)s and status = %(active)s
                  and (lease_until is null or lease_until < now() or lease_run = %(holder)s)
                  for no key update skip locked),  -- an import or removal holds it: busy
           claimed as (
               update user_tokens u set lease_run = %(holder)s, lease_until = now() + %(lease)s
                 from target where u.id = target.id
               returning {_prefixed("u")})
            select c.*, u.status, u.lease_until,
                   array(select played_at from listening_history where user_id = %(key)s
                          order by played_at desc limit %(recent)s)
              from (select 1) one
              left join user_tokens u on u.id = %(key)s
              left join claimed c on true""",
        {
            "key": key,
            "holder": holder,
            "lease": lease,
            "recent": RECENT_PLAYS,
            "active": UserStatus.ACTIVE,
        },
    ).fetchone()
    fields = len(_USER_COLUMNS.split(","))
    user = User(*row[:fields]) if row[0] is not None else None
    status, held_until, recent = row[fields:]
    return Claim(user, status, None if user else held_until, tuple(recent))


def lock_for_change(conn: psycopg.Connection, key: int, what: str) -> None:
    """In the caller's transaction: row-lock the user, refusing while a run holds it.

    For imports and removals, which must not run while a sync works on the user; the
    row lock keeps a new claim out until the caller's transaction ends.
    """
    row = conn.execute(
        # `no key update`: keeps claims out, but not the key-share locks that foreign key
        # checks take (a run recording a skipped user must not wait for the import)
        "select lease_until > now() from user_tokens where id = %s for no key update",
        (key,),
    ).fetchone()
    if row is not None and row[0]:
        raise UserError(
            f"a sync run is working on this user right now: {what} when it has finished "
            "(a minute or two)"
        )


# One sign-in of an account at a time: pg_advisory_xact_lock(hashtextextended(
# 'sync-login:<Spotify id>', 0)), a text key (unlike the integers in sync/db/locks.py) so that
# it holds for an account not stored yet.
SIGN_IN_LOCK = "sync-login"


def sign_in_subject(conn: psycopg.Connection, key: int, lock: bool) -> tuple[str, str] | None:
    """(Spotify id, status) of the user a sign-in link names, None when gone; with `lock`,
    row-locked until the caller's transaction ends."""
    return conn.execute(
        "select user_id, status from user_tokens where id = %s" + (" for update" if lock else ""),
        (key,),
    ).fetchone()


def lock_sign_in(conn: psycopg.Connection, user_id: str) -> tuple[str, datetime | None] | None:
    """In the caller's transaction: serialize sign-ins of this account, new rows included
    (a transaction-level advisory lock works through transaction poolers), and row-lock its
    row. Returns the stored (status, authorized_at), None for a new account."""
    conn.execute(
        "select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{SIGN_IN_LOCK}:{user_id}",)
    )
    return conn.execute(
        "select status, authorized_at from user_tokens where user_id = %s for update", (user_id,)
    ).fetchone()


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
    used_refresh_token: str,
    access_token: str,
    expires_at: datetime,
    refresh_token: str | None,
    scope: str | None,
) -> bool:
    """Store a refreshed access token, compare-and-set on the refresh token that was used.

    Keeps the old refresh token when none came back. Returns False (writing nothing)
    when the row changed meanwhile (another run, a login, a removal): the stored value
    wins over ours.
    """
    row = conn.execute(
        """update user_tokens
              set access_token = %s, access_token_expires_at = %s,
                  refresh_token = coalesce(%s, refresh_token),
                  scope = coalesce(%s, scope), updated_at = now()
            where id = %s and refresh_token = %s and status = %s
        returning 1""",
        (
            access_token,
            expires_at,
            refresh_token,
            scope,
            key,
            used_refresh_token,
            UserStatus.ACTIVE,
        ),
    ).fetchone()
    return row is not None


def set_time_zone(conn: psycopg.Connection, key: int, zone: str) -> None:
    conn.execute(
        "update user_tokens set time_zone = %s, updated_at = now() where id = %s", (zone, key)
    )


def mark_needs_reauth(
    conn: psycopg.Connection, key: int, used_refresh_token: str, reason: str
) -> bool:
    """Mark the user needs_reauth, only if the refresh token Spotify refused is still stored.

    Returns False when the row holds another token by now (a login or another run
    replaced it): a refused old token says nothing about the new one.
    """
    row = conn.execute(
        """update user_tokens
              set status = %s, status_reason = %s, status_changed_at = now(),
                  access_token = null, access_token_expires_at = null, updated_at = now()
            where id = %s and refresh_token = %s and status = %s
        returning 1""",
        (UserStatus.NEEDS_REAUTH, reason, key, used_refresh_token, UserStatus.ACTIVE),
    ).fetchone()
    return row is not None


def user_overview(conn: psycopg.Connection) -> list[tuple]:
    """Per user: id, key, status, reason, last ok sync, plays, token expiry, access expiry."""
    return conn.execute(
        """select u.user_id, u.id, u.status, u.status_reason,
                  (select max(r.finished_at) from sync_run_users r
                    where r.user_id = u.id and r.status = %s),
                  (select count(*) from listening_history h where h.user_id = u.id),
                  u.authorized_at + make_interval(months => %s),
                  u.access_token_expires_at
             from user_tokens u order by u.id""",
        (Outcome.OK, REFRESH_TOKEN_LIFETIME_MONTHS),
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
        "select status, status_reason, id from user_tokens where user_id = %s for update",
        (user_id,),
    ).fetchone()
    if before is not None and before[0] == UserStatus.DEMO:  # a real account of that id
        remove_user(conn, before[2], keep_history=False)  # the made-up plays are not theirs
        before = None
    row = conn.execute(
        """insert into user_tokens as u (user_id, refresh_token, access_token,
                  access_token_expires_at, scope, authorized_at, status, status_reason,
                  status_changed_at, created_at, updated_at)
           values (%(user)s, %(refresh)s, %(access)s, %(expires)s, %(scope)s, %(now)s,
                   %(active)s, null, %(now)s, %(now)s, %(now)s)
           on conflict (user_id) do update set
                  refresh_token = excluded.refresh_token,
                  access_token = excluded.access_token,
                  access_token_expires_at = excluded.access_token_expires_at,
                  scope = excluded.scope,
                  authorized_at = excluded.authorized_at,
                  status = excluded.status,
                  status_reason = null,
                  status_changed_at = case when u.status <> excluded.status
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
            "active": UserStatus.ACTIVE,
        },
    ).fetchone()
    if before is None:
        return row[0], True, None, None
    return row[0], False, before[0], before[1]


def replace_demo_user(conn: psycopg.Connection, user_id: str, zone: str) -> int:
    """Delete the demo user with everything it holds and create it afresh; return its key.

    In the caller's transaction. Refuses (UserError) when the id belongs to a user who is
    not the demo: a real account's history is never touched.
    """
    row = conn.execute(
        "select id, status from user_tokens where user_id = %s for update", (user_id,)
    ).fetchone()
    if row is not None:
        if row[1] != UserStatus.DEMO:
            raise UserError(
                f"a real user {user_id!r} is stored (status {row[1]}): the demo never replaces "
                "a real account's history; try it on the embedded database (unset DATABASE_URL)"
            )
        remove_user(conn, row[0], keep_history=False)
    return conn.execute(  # the same key again: the alias (user-N) and report name stay
        """insert into user_tokens (id, user_id, refresh_token, status, status_reason,
                  status_changed_at, time_zone)
           values (coalesce(%s, nextval(pg_get_serial_sequence('user_tokens', 'id'))), %s,
                   null, %s, 'made-up history from python -m sync demo', now(), %s)
           returning id""",
        (row[0] if row else None, user_id, UserStatus.DEMO, zone),
    ).fetchone()[0]


def remove_user(conn: psycopg.Connection, key: int, keep_history: bool) -> int:
    """Delete the user and all their data, or (keep_history) erase tokens and stop syncing.

    Returns the number of plays deleted (0 when kept). One transaction; the caller's.
    Deleting cascades to listening_history, sync_run_users and the analytics tables.
    """
    lock_for_change(conn, key, "remove it")
    if keep_history:
        conn.execute(
            """update user_tokens
                  set status = %s, status_reason = 'removed by the owner; history kept',
                      status_changed_at = now(), refresh_token = null, access_token = null,
                      access_token_expires_at = null, scope = null, updated_at = now()
                where id = %s""",
            (UserStatus.REMOVED, key),
        )
        return 0
    plays = conn.execute(
        "with gone as (delete from listening_history where user_id = %s returning 1) "
        "select count(*) from gone",
        (key,),
    ).fetchone()[0]
    conn.execute("delete from user_tokens where id = %s", (key,))
    return plays
