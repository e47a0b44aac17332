"""Database round trips of `sync run`, counted by a proxy (issue 9).

The database is usually 20-80 ms away, so round trips are counted like HTTP requests.
Per user: (round trips with 2N users - round trips with N users) / N, one worker, so
that the run's fixed cost cancels out. These are counts, not times: stable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import add_user
from tests.support.pgproxy import PgProxy
from tests.support.spotify_fakes import window
from tests.support.sync_helpers import CliRunner

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _users(conn, spotify, names, *, valid_token: bool) -> None:
    for n, name in enumerate(names):
        token = f"access-{name}-valid" if valid_token else None
        add_user(conn, name, f"refresh-{name}-0001", access_token=token,
                 expires_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
        spotify.add_user(name, f"refresh-{name}-0001", window(NEWEST, 10, start_n=n * 100))
        if valid_token:
            spotify.grant_access(name, token)


def _measure(monkeypatch, capsys, tmp_path, spotify, proxy: PgProxy, names) -> dict[str, int]:
    """Round trips of a first sync, a sync with new plays, and one with nothing new."""
    run = CliRunner(monkeypatch, capsys, tmp_path, proxy.url)
    counts = {}
    proxy.reset()
    assert run("run", "--concurrency", "1").code == 0
    counts["first"] = proxy.round_trips
    for n, name in enumerate(names):  # ten new plays each
        spotify.plays[name] = window(NEWEST + timedelta(hours=1), 10, start_n=n * 100 + 50)
    proxy.reset()
    assert run("run", "--concurrency", "1").code == 0
    counts["new"] = proxy.round_trips
    proxy.reset()
    opened = len(proxy.per_connection)
    assert run("run", "--concurrency", "1").code == 0
    counts["nothing_new"] = proxy.round_trips
    counts["fixed"] = proxy.per_connection[opened]  # the run's own connection
    return counts


@pytest.mark.parametrize("valid_token", [True, False], ids=["token-valid", "token-refreshed"])
def test_round_trips_per_user_and_fixed_cost(
    monkeypatch, capsys, tmp_path, spotify, pg_cluster, valid_token
):
    results = []
    for count in (2, 4):
        url = pg_cluster.create()
        try:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn, PgProxy(url) as proxy:
                names = [f"u{count}x{i}" for i in range(count)]
                _users(conn, spotify, names, valid_token=valid_token)
                results.append(_measure(monkeypatch, capsys, tmp_path, spotify, proxy, names))
        finally:
            pg_cluster.drop(url)
    fixed = results[1].pop("fixed")
    assert fixed == results[0].pop("fixed")  # whatever the number of users
    per_user = {k: (results[1][k] - results[0][k]) / 2 for k in results[0]}
    # claim and read the user, then write everything (plays, catalogue, analytics, result,
    # release) in one statement; a token refresh adds its compare-and-set save.
    refresh = 0 if valid_token else 1
    assert per_user == {"first": 2 + refresh, "new": 2, "nothing_new": 2}
    # The run's own connection: connect, schema check, users, open and close the run.
    print(f"fixed cost {fixed} round trips, per user {per_user}")
    assert fixed <= 6, fixed
