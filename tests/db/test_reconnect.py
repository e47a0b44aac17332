"""sync.db.reconnect: a lost connection gets one more try on a new one; nothing else does.

Connections are lost for real: another session terminates the backend (what a server
restart or a pooler's cut does to the client)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from sync.db.reconnect import connection_lost, once_more_on_new


def _kill(killer: psycopg.Connection, victim: psycopg.Connection) -> None:
    killer.execute("select pg_terminate_backend(%s)", (victim.info.backend_pid,))


@pytest.fixture
def opened(db_url):
    """Connections to hand out, in order; all closed at the end."""
    made: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        made.append(psycopg.connect(db_url, autocommit=True))
        return made[-1]

    yield connect, made
    for c in made:
        c.close()


def test_a_lost_connection_is_tried_once_more_on_a_new_one(conn, opened):
    connect, made = opened
    first = connect()
    handed = iter([first])
    lost_with = []

    def work(c: psycopg.Connection) -> int:
        if c is first:
            _kill(conn, first)
        return c.execute("select pg_backend_pid()").fetchone()[0]

    pid = once_more_on_new(work, lambda: next(handed, None) or connect(), on_lost=lost_with.append)
    assert first.broken and len(made) == 2
    assert pid == made[1].info.backend_pid
    assert [type(e) for e in lost_with] == [psycopg.errors.AdminShutdown]


def test_a_second_loss_propagates(conn, opened):
    connect, made = opened

    def work(c: psycopg.Connection) -> None:
        _kill(conn, c)
        c.execute("select 1")

    with pytest.raises(psycopg.OperationalError):
        once_more_on_new(work, connect)
    assert len(made) == 2


def test_an_error_on_a_live_connection_is_not_retried(opened):
    connect, made = opened
    calls = []

    def work(c: psycopg.Connection) -> None:
        calls.append(c)
        c.execute("select * from no_such_table")

    with pytest.raises(psycopg.errors.UndefinedTable):
        once_more_on_new(work, connect)
    assert len(calls) == 1 and not connection_lost(made[0], psycopg.OperationalError())


def test_failing_to_connect_counts_as_lost_and_new_gives_the_second(db_url, opened):
    connect, made = opened

    def unreachable() -> psycopg.Connection:
        return psycopg.connect(make_conninfo(db_url, dbname="no_such_database_here"))

    got = once_more_on_new(lambda c: c, unreachable, new=connect)
    assert got is made[0]
    assert connection_lost(None, psycopg.OperationalError()) is True


def test_the_caller_decides_what_counts_as_lost(opened):
    connect, made = opened
    tries = []

    def work(c: psycopg.Connection) -> str:
        tries.append(c)
        if len(tries) == 1:
            raise LookupError("the caller's own kind of loss")
        return "second"

    result = once_more_on_new(work, connect, lost=lambda c, exc: isinstance(exc, LookupError))
    assert result == "second" and len(tries) == 2
