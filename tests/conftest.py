from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.support.pg import PgCluster

# Slow system tests (whole runs, the runner's signals, many hours, browsers, upgrades from
# every commit): `python -m pytest -q -m "not slow"` leaves them out; .ci/run runs all.
SLOW = ("tests/system/", "tests/db/test_schema_upgrade.py")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    cluster.build_template()
    yield cluster
    cluster.close()


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh, fully migrated database for this test only."""
    url = pg_cluster.create()
    yield url
    pg_cluster.drop(url)


@pytest.fixture
def empty_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a fresh database with no schema at all."""
    url = pg_cluster.create(migrated=False)
    yield url
    pg_cluster.drop(url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def add_user(
    conn: psycopg.Connection,
    user_id: str = "alice",
    refresh_token: str = "refresh-alice-0001",
    *,
    access_token: str | None = None,
    expires_at: datetime | None = None,
    authorized_at: datetime | None = None,
    status: str = "active",
) -> int:
    """Insert a user row the way a web app's login (or `sync login`) would; return its key."""
    cols = {"user_id": user_id, "refresh_token": refresh_token, "status": status}
    if access_token is not None:
        cols["access_token"] = access_token
        cols["access_token_expires_at"] = expires_at or datetime.now(UTC) + timedelta(hours=1)
    if authorized_at is not None:
        cols["authorized_at"] = authorized_at
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    with conn.transaction():
        row = conn.execute(
            f"insert into user_tokens ({names}) values ({marks}) returning id",
            list(cols.values()),
        ).fetchone()
    return row[0]


@pytest.fixture
def spotify():
    """Spotify's HTTP API mocked in-process with `responses` (see tests/support/sync_helpers.py)."""
    import responses

    from tests.support.sync_helpers import FakeSpotify

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeSpotify(rsps)


@pytest.fixture
def run(monkeypatch, capsys, tmp_path, db_url):
    """Runs `sync.cli.main([...])` in-process with a clean environment and injected time."""
    from tests.support.sync_helpers import CliRunner

    return CliRunner(monkeypatch, capsys, tmp_path, db_url)
