"""`run`'s own record: close_run finishes it once more on a new connection, never raises."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import psycopg

from sync.commands.run import close_run
from sync.statuses import RunStatus
from sync.store import runs as runs_store

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/unused"


def _open(conn: psycopg.Connection) -> int:
    return runs_store.open_run(conn, "manual", None, timedelta(minutes=30)).run_id


def _status(conn: psycopg.Connection, run_id: int) -> str:
    return conn.execute("select status from sync_runs where id = %s", (run_id,)).fetchone()[0]


def test_a_closed_connection_is_replaced_and_the_new_one_returned(conn, db_url):
    run_id = _open(conn)
    own = psycopg.connect(db_url, autocommit=True)
    own.close()
    fresh = close_run(db_url, own, run_id, RunStatus.OK, None)
    assert fresh is not None and fresh is not own and not fresh.closed
    fresh.close()
    assert _status(conn, run_id) == "ok"


def test_a_failing_statement_is_tried_once_more_on_a_new_connection(conn, db_url, caplog):
    run_id = _open(conn)
    own = psycopg.connect(db_url)  # a transaction aborted by an earlier error
    with contextlib.suppress(psycopg.errors.DivisionByZero):
        own.execute("select 1 / 0")
    with caplog.at_level(logging.WARNING, logger="sync.commands.run"):
        fresh = close_run(db_url, own, run_id, RunStatus.FAILED, None)
    assert fresh is not None and fresh is not own
    fresh.close()
    own.close()
    assert _status(conn, run_id) == "failed"
    assert [r.getMessage() for r in caplog.records] == [
        "could not finish the run record (InFailedSqlTransaction); trying a new connection"
    ]


def test_no_database_at_all_gives_none_and_two_warnings(conn, caplog):
    run_id = _open(conn)
    with caplog.at_level(logging.WARNING, logger="sync.commands.run"):
        assert close_run(UNREACHABLE, None, run_id, RunStatus.OK, None) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].endswith("; trying a new connection")
    assert messages[1].startswith("could not finish the run record (")
    assert not messages[1].endswith("; trying a new connection")
    assert _status(conn, run_id) == "running"
