"""Access tokens: reuse while valid, refresh with leeway, persist rotation before anything else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from sync.spotify.client import InvalidGrant, SpotifyClient
from sync.store import users as user_store
from sync.store.users import User
from sync.text import plural

log = logging.getLogger(__name__)

LEEWAY = timedelta(seconds=60)
REFRESH_TOKEN_LIFETIME_MONTHS = 6
EXPIRY_WARNING_DAYS = (30, 7)


class NeedsReauth(Exception):
    """The user's refresh token is dead (invalid_grant); they must sign in again."""


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
) -> str:
    """Refresh and commit the new tokens at once; invalid_grant marks the user needs_reauth.

    Temporary failures propagate with the stored token untouched.
    """
    try:
        answer = client.refresh(user.refresh_token)
    except InvalidGrant as exc:
        reason = str(exc)
        user_store.mark_needs_reauth(conn, user.key, reason)
        conn.commit()
        raise NeedsReauth(reason) from None
    protect(answer.access_token)
    if answer.refresh_token:
        protect(answer.refresh_token)
    user_store.save_tokens(
        conn,
        user.key,
        answer.access_token,
        now + timedelta(seconds=answer.expires_in),
        answer.refresh_token,
        answer.scope,
    )
    conn.commit()
    return answer.access_token


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
        return "refresh token is past Spotify's 6-month limit: sign in again (python -m sync login)"
    for days in sorted(EXPIRY_WARNING_DAYS):
        if left <= timedelta(days=days):
            return (
                f"refresh token expires in {plural(left.days, 'day')} ({expires:%Y-%m-%d}): "
                "sign in again before then (python -m sync login)"
            )
    return None
