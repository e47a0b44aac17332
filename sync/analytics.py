"""Listening analytics kept current incrementally (stub until the analytics tables exist)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg


def refresh_days(conn: psycopg.Connection, user_key: int, played_at: Iterable[datetime]) -> None:
    """Recompute the aggregates of the user's local days that hold these plays.

    Called inside the same transaction as the insert (or update) of those plays.
    """
    return None


def cmd_aggregate(args, settings) -> int:
    from sync.errors import UserError

    raise UserError("aggregate is not available yet")


def cmd_set_timezone(args, settings) -> int:
    from sync.errors import UserError

    raise UserError("users set-timezone is not available yet")
