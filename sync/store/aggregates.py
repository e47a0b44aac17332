"""The writes that keep the listening analytics current: two SQL calls.

The work happens in SQL (sql/repeatable/30_analytics_write.sql) so that anything writing
plays, not only this package, can keep the aggregates current with the same two calls:
`analytics_refresh_plays(user, played_at[])` after a change, `analytics_rebuild(user)`
for everything. Callers own the transaction. Reading the aggregates is sync/analytics/'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg


def refresh_days(conn: psycopg.Connection, user_key: int, played_at: Iterable[datetime]) -> None:
    """Recompute the aggregates of the user's local days that hold these plays.

    Call inside the transaction that inserted the plays (or changed their ms_played),
    with their played_at. The day of the play after each one is refreshed too, since
    its estimated listening time depends on the time since its previous play.
    """
    times = sorted(set(played_at))
    if not times:
        return
    conn.execute("select analytics_refresh_plays(%s, %s::timestamptz[])", (user_key, times))


def rebuild(conn: psycopg.Connection, user_key: int) -> None:
    """Rebuild every aggregate of one user from listening_history (caller owns the transaction)."""
    conn.execute("select analytics_rebuild(%s)", (user_key,))
