""" "The connection was lost: once more on a new one", written once.

A dropped connection (a server restart, a pooler cutting an idle client, a network blip)
costs the job's user, or a run's record, one second try instead of a failure. Every other
error is the caller's: it propagates, and so does a second loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")


def connection_lost(conn: psycopg.Connection | None, exc: BaseException) -> bool:
    """An OperationalError that left no usable connection (or none was ever opened)."""
    return isinstance(exc, psycopg.OperationalError) and (
        conn is None or conn.closed or conn.broken
    )


def once_more_on_new(
    work: Callable[[psycopg.Connection], T],
    connection: Callable[[], psycopg.Connection],
    *,
    new: Callable[[], psycopg.Connection] | None = None,
    lost: Callable[[psycopg.Connection | None, Exception], bool] = connection_lost,
    on_lost: Callable[[Exception], None] | None = None,
) -> T:
    """`work(connection())`; if that fails and `lost(conn, exc)` says the connection was
    lost, `on_lost(exc)` and `work(new())` once more (`new` defaults to `connection`, which
    must then replace a closed or broken connection).

    Opening the connection is part of the try: failing to connect (conn is None) counts as
    lost. The second try's errors propagate as they are.
    """
    conn = None
    try:
        conn = connection()
        return work(conn)
    except Exception as exc:
        if not lost(conn, exc):
            raise
        if on_lost is not None:
            on_lost(exc)
    return work((new or connection)())
