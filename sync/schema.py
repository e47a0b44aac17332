"""Applying sql/ to a database: numbered migrations, each once, in order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg

from sync import locks

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((match.group(1), path))
    return found


def applied_versions(conn: psycopg.Connection) -> set[str]:
    exists = conn.execute("select to_regclass('schema_migrations') is not null").fetchone()[0]
    if not exists:
        return set()
    return {row[0] for row in conn.execute("select version from schema_migrations")}


def migrate(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    applied: list[str] = []
    conn.execute("select pg_advisory_lock(%s)", (locks.MIGRATION,))
    conn.commit()
    try:
        done = applied_versions(conn)
        conn.rollback()
        for version, path in migrations(sql_dir):
            if version in done:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute(
                    "insert into schema_migrations (version) values (%s) on conflict do nothing",
                    (version,),
                )
            log.info("applied migration %s", path.name)
            applied.append(version)
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (locks.MIGRATION,))
        conn.commit()
    return applied
