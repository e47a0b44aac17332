"""Codes with one home in Python: source codes (sync.store.sources.Source, PRECISION_MS,
MATCH_TOLERANCE_MS) and statuses (sync.statuses). The SQL that uses them on its own
must do what the Python names say: these tests compare."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.statuses import Outcome, RunStatus, UserStatus
from sync.store.rows import Play, TrackRow
from sync.store.sources import MATCH_TOLERANCE_MS, PRECISION_MS, Source
from tests.conftest import add_user
from tests.support.store import store_plays

SYNC = Path(__file__).resolve().parents[2] / "sync"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _let_through(conn, key: int, track: int, at: datetime) -> bool:
    """Whether history_api_plays_to_insert lets a fetched play of `track` at `at` in."""
    rows = conn.execute(
        "select played_at from history_api_plays_to_insert(%s, %s, %s, %s)",
        (key, [at], [track], MATCH_TOLERANCE_MS),
    ).fetchall()
    return bool(rows)


@pytest.mark.parametrize("source", list(Source))
def test_the_sql_match_window_of_each_source_is_its_precision(conn, source):
    key = add_user(conn)
    track = conn.execute(
        "insert into tracks (uri, name) values ('spotify:track:c', 'Song') returning id"
    ).fetchone()[0]
    conn.execute(
        "insert into listening_history (user_id, played_at, track_id, ms_played, source) "
        "values (%s, %s, %s, 100000, %s)",
        (key, T0, track, source),
    )
    edge = T0 + (PRECISION_MS[source] + MATCH_TOLERANCE_MS) * MS
    if source == Source.API:  # a stored API play stands for no other fetched play
        assert _let_through(conn, key, track, T0 + MS)
        return
    assert not _let_through(conn, key, track, edge)
    assert _let_through(conn, key, track, edge + MS)
    assert not _let_through(conn, key, track, T0 - MATCH_TOLERANCE_MS * MS)
    assert _let_through(conn, key, track, T0 - (MATCH_TOLERANCE_MS + 1) * MS)


def test_the_sql_default_tolerance_and_the_syncs_source_are_the_pythons(conn):
    args = conn.execute(
        "select pg_get_function_arguments('history_api_plays_to_insert'::regproc)"
    ).fetchone()[0]
    assert re.search(r"p_tolerance_ms integer DEFAULT (\d+)", args).group(1) == str(
        MATCH_TOLERANCE_MS
    )
    key = add_user(conn)
    track = TrackRow("spotify:track:s", "s", "Song", 200_000, False, False, None, 1, 1, None, ())
    store_plays(conn, key, [Play(T0, track)])  # sync_store_user, 60_sync.sql
    assert conn.execute("select source from listening_history").fetchall() == [(Source.API,)]


def _checked(conn, constraint: str) -> set[str]:
    text = conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = %s", (constraint,)
    ).fetchone()[0]
    return set(re.findall(r"'([a-z_]+)'::text", text))


def test_the_status_check_constraints_hold_exactly_the_enums(conn):
    assert _checked(conn, "user_tokens_status_check") == set(UserStatus)
    assert _checked(conn, "sync_runs_status_check") == set(RunStatus)
    assert _checked(conn, "sync_run_users_status_check") == set(Outcome)


def test_the_store_passes_statuses_as_parameters():
    """A status spelled in the store's SQL ('active') would be a second home."""
    values = {s.value for enum in (UserStatus, RunStatus, Outcome) for s in enum}
    quoted = re.compile(r"'(" + "|".join(sorted(values)) + r")'")
    found = [
        f"{path.relative_to(SYNC)}:{n}"
        for path in sorted((SYNC / "store").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert found == []
