"""Access tokens: reuse while valid, refresh with leeway, persist rotation before anything else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import psycopg

from sync.spotify.client import InvalidGrant, SpotifyClient, TokenResponse
from sync.statuses import UserStatus
from sync.store import users as user_store
from sync.store.users import REFRESH_TOKEN_LIFETIME_MONTHS, User
from sync.text import plural

log = logging.getLogger(__name__)

LEEWAY = timedelta(seconds=60)
EXPIRY_WARNING_DAYS = (30, 7)


class NeedsReauth(Exception):
    """The user's refresh token is dead (invalid_grant); they must sign in again."""


class UserChanged(Exception):
    """The user was removed or stopped being active while this run worked on it."""


def cached_access_token(user: User, now: datetime) -> str | None:
    """The stored access token if it stays valid for more than LEEWAY."""
    expires = user.access_token_expires_at
    if user.access_token and expires and expires - now > LEEWAY:
        return user.access_token
    return None


def refresh_access_token(
    conn: psycopg.Connection,
    client: SpotifyClient,
    user: User,
    now: datetime,
    protect: Callable[[str], None],
    who: str | None = None,
) -> tuple[str, User]:
    """Refresh and store the new tokens at once; return the access token and the user now.

    Every write is compare-and-set on the refresh token this run used: when a login,
    another run or a removal changed the row meanwhile, the stored value wins. Spotify
    refusing a refresh token (invalid_grant) marks the user needs_reauth only while that
    token is still the stored one; otherwise the stored token is tried once.
    Temporary failures propagate with the stored token untouched.
    """
    for _ in range(2):
        try:
            answer = client.refresh(user.refresh_token, who=who)
        except InvalidGrant as exc:
            reason = str(exc)
            if user_store.mark_needs_reauth(conn, user.key, user.refresh_token, reason):
                raise NeedsReauth(reason) from None
            fresh = _current(conn, user)
            if fresh.refresh_token == user.refresh_token:  # marked by another run just now
                raise NeedsReauth(reason) from None
            log.info("%s: the refresh token changed during the run; using the stored one", who)
            user = fresh
            continue
        protect(answer.access_token)
        if answer.refresh_token:
            protect(answer.refresh_token)
        pending = PendingTokens(user.key, user.refresh_token, answer, now)
        try:
            saved = save_pending(conn, pending)
        except psycopg.OperationalError as exc:
            # Spotify may have rotated: the old refresh token is dead and the new one
            # exists only here. Keep it for the caller to store on a new connection.
            raise TokensNotSaved(pending) from exc
        if saved:
            return answer.access_token, replace(
                user,
                refresh_token=answer.refresh_token or user.refresh_token,
                access_token=answer.access_token,
            )
        # A login (or another run) stored other tokens meanwhile: theirs win. The access
        # token Spotify just gave is still good for this run's reads.
        return answer.access_token, _current(conn, user)
    raise NeedsReauth("Spotify refused the stored refresh token too")


@dataclass(frozen=True)
class PendingTokens:
    """Tokens Spotify handed out that are not stored yet (the write failed)."""

    key: int
    used_refresh_token: str = field(repr=False)
    answer: TokenResponse = field(repr=False)
    received_at: datetime


class TokensNotSaved(Exception):
    """The database went away between Spotify's answer and its save; `pending` holds it."""

    def __init__(self, pending: PendingTokens):
        super().__init__("the refreshed tokens could not be saved (database connection lost)")
        self.pending = pending


def save_pending(conn: psycopg.Connection, pending: PendingTokens) -> bool:
    """Store refreshed tokens, compare-and-set on the refresh token used (see save_tokens)."""
    answer = pending.answer
    return user_store.save_tokens(
        conn,
        pending.key,
        pending.used_refresh_token,
        answer.access_token,
        pending.received_at + timedelta(seconds=answer.expires_in),
        answer.refresh_token,
        answer.scope,
    )


def _current(conn: psycopg.Connection, user: User) -> User:
    fresh = user_store.load_user(conn, user.key)
    if fresh is None or fresh.status != UserStatus.ACTIVE:
        raise UserChanged("the user was removed or deactivated during the run; not synced")
    return fresh


def refresh_token_expires_at(authorized: datetime) -> datetime:
    """Refresh tokens die 6 calendar months after authorization; refreshing does not extend."""
    month = authorized.month - 1 + REFRESH_TOKEN_LIFETIME_MONTHS
    year = authorized.year + month // 12
    month = month % 12 + 1
    day = min(authorized.day, _days_in_month(year, month))
    return authorized.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + month // 12, month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def expiry_warning(user: User, now: datetime) -> str | None:
    """A warning 30 and 7 days before the refresh token reaches 6 months, and after."""
    expires = refresh_token_expires_at(user.authorized_at)
    left = expires - now
    if left <= timedelta(0):
        return (
            f"refresh token is past Spotify's {REFRESH_TOKEN_LIFETIME_MONTHS}-month limit: sign in "
            "again (python -m sync login)"
        )
    for days in sorted(EXPIRY_WARNING_DAYS):
        if left <= timedelta(days=days):
            return (
                f"refresh token expires in {plural(left.days, 'day')} ({expires:%Y-%m-%d}): "
                "sign in again before then (python -m sync login)"
            )
    return None
