"""Applying sql/ to a database (docs/schema.md, "How migrate decides what to apply").

Two kinds of files:
- numbered migrations, sql/NNN_name.sql: tables, columns, indexes, constraints. Append-only
  once on main: each is applied once, in number order, and recorded by version in
  schema_migrations (the files record themselves too, for pastes into Supabase's SQL
  editor) and by name and checksum in schema_files. A recorded file whose checksum has
  changed since is reported with a warning and not applied again.
- repeatable files, sql/repeatable/*.sql: the current definitions of functions and views,
  safe to run any number of times. Each is applied, in file-name order after the
  numbered ones, whenever its checksum differs from the one recorded in schema_files.

Opt-in files, sql/optional/*.sql, are neither: only `migrate --with NAME` applies one
(apply_optional, after the others; recorded in schema_files like a repeatable file).

When nothing is pending, `migrate` costs one round trip to the server: one query returns
the server version and everything recorded; the comparison happens here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import pq

from sync.db import locks
from sync.errors import UserError

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
REPEATABLE_DIR = "repeatable"  # under SQL_DIR
# `migrate --with NAME` -> its opt-in file under SQL_DIR, never applied by default
OPTIONAL = {"app-access": "optional/app_access.sql"}
MIN_SERVER_VERSION = 150000  # PostgreSQL 15: views use security_invoker
LOCK_WAIT_SECONDS = 60.0  # how long a migrate waits for another one to finish
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

# One query, one round trip: fails (undefined table) only on a database that lacks
# schema_files, where something is pending anyway.
_STATE = """
select current_setting('server_version_num')::integer,
       array(select version from schema_migrations),
       coalesce((select json_object_agg(name, checksum) from schema_files), '{}'::json)
"""
_STATE_WITHOUT_FILES = """
select current_setting('server_version_num')::integer,
       to_regclass('schema_migrations') is not null
"""


def migrations(sql_dir: Path = SQL_DIR) -> list[tuple[str, Path]]:
    """The numbered migrations, (version, path) in number order."""
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((match.group(1), path))
    return found


def repeatables(sql_dir: Path = SQL_DIR) -> list[Path]:
    """The repeatable files, in the order they are applied (by file name)."""
    return sorted((sql_dir / REPEATABLE_DIR).glob("*.sql"))


def file_name(path: Path, sql_dir: Path = SQL_DIR) -> str:
    """How schema_files names a file: its path under sql/, e.g. repeatable/10_history.sql."""
    return path.relative_to(sql_dir).as_posix()


@functools.cache
def checksum(path: Path) -> str:
    """sha256 of the file (line endings normalized), computed once per process and path."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def server_version_problem(version_num: int) -> str | None:
    """Why a server of this server_version_num cannot hold the schema, or None."""
    if version_num >= MIN_SERVER_VERSION:
        return None
    major, minor = divmod(version_num, 10000)
    return (
        f"the schema needs PostgreSQL 15 or newer; this server is {major}.{minor}: upgrade it "
        "(Supabase: Project Settings, Infrastructure) or point DATABASE_URL at a newer one"
    )


@dataclass(frozen=True)
class State:
    """What the database has recorded."""

    server_version: int
    versions: frozenset[str]  # schema_migrations
    checksums: dict[str, str] = field(default_factory=dict)  # schema_files, name -> sha256
    has_files_table: bool = True


@dataclass(frozen=True)
class Plan:
    """What migrate has to do for a state and a sql/ directory."""

    numbered: list[tuple[str, Path]]  # not yet applied
    repeatable: list[Path]  # checksum differs from the recorded one, or none recorded
    unrecorded: list[Path]  # applied numbered files without a recorded checksum
    changed: list[str]  # applied numbered files whose checksum changed since: warn only

    @property
    def pending(self) -> bool:
        return bool(self.numbered or self.repeatable or self.unrecorded)

    def names(self, sql_dir: Path = SQL_DIR) -> list[str]:
        """Versions of pending numbered files, then names of pending repeatable files."""
        return [v for v, _ in self.numbered] + [file_name(p, sql_dir) for p in self.repeatable]


def plan(state: State, sql_dir: Path = SQL_DIR) -> Plan:
    numbered, unrecorded, changed = [], [], []
    for version, path in migrations(sql_dir):
        recorded = state.checksums.get(file_name(path, sql_dir))
        if version not in state.versions:
            numbered.append((version, path))
        elif recorded is None:
            unrecorded.append(path)
        elif recorded != checksum(path):
            changed.append(file_name(path, sql_dir))
    repeatable = [
        path
        for path in repeatables(sql_dir)
        if state.checksums.get(file_name(path, sql_dir)) != checksum(path)
    ]
    # An opt-in file applied here once (`migrate --with`) follows its own changes like a
    # repeatable one, after them, so a pull that updates it needs no second command.
    repeatable += [
        sql_dir / rel
        for rel in OPTIONAL.values()
        if rel in state.checksums and state.checksums[rel] != checksum(sql_dir / rel)
    ]
    return Plan(numbered, repeatable, unrecorded, changed)


@contextmanager
def _one_statement(conn: psycopg.Connection) -> Iterator[None]:
    """Run a read outside any transaction block, so it costs no BEGIN/ROLLBACK round trip."""
    if conn.autocommit or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        yield
        return
    conn.autocommit = True  # a client-side switch: nothing is sent
    try:
        yield
    finally:
        conn.autocommit = False


def read_state(conn: psycopg.Connection) -> State:
    """One query when schema_files exists (an up-to-date database); a few more otherwise."""
    with _one_statement(conn):
        try:
            with conn.transaction() if _in_block(conn) else nullcontext():
                version, versions, checksums = conn.execute(_STATE).fetchone()
            return State(version, frozenset(versions), dict(checksums))
        except psycopg.errors.UndefinedTable:
            pass
        version, has_migrations = conn.execute(_STATE_WITHOUT_FILES).fetchone()
        versions = applied_versions(conn) if has_migrations else set()
        return State(version, frozenset(versions), {}, has_files_table=False)


def _in_block(conn: psycopg.Connection) -> bool:
    return conn.info.transaction_status == pq.TransactionStatus.INTRANS


def applied_versions(conn: psycopg.Connection) -> set[str]:
    """The versions recorded in schema_migrations (empty when the table does not exist)."""
    exists = conn.execute("select to_regclass('schema_migrations') is not null").fetchone()[0]
    if not exists:
        return set()
    return {row[0] for row in conn.execute("select version from schema_migrations")}


def migrate(
    conn: psycopg.Connection,
    sql_dir: Path = SQL_DIR,
    *,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> list[str]:
    """Apply what is pending, each file in its own transaction; return what was applied
    (versions of numbered files, then names of repeatable files)."""
    if _in_block(conn):
        conn.commit()  # migrations run in transactions of their own
    state = read_state(conn)
    _check_server(state)
    todo = plan(state, sql_dir)
    _warn_changed(todo)
    if not todo.pending:
        return []
    _lock(conn, lock_wait)
    try:
        todo = plan(read_state(conn), sql_dir)  # another migrate may have done it meanwhile
        return _apply(conn, todo, sql_dir)
    finally:
        with conn.transaction():
            conn.execute("select pg_advisory_unlock(%s)", (locks.MIGRATION,))


def _check_server(state: State) -> None:
    problem = server_version_problem(state.server_version)
    if problem:
        raise UserError(problem)


def _warn_changed(todo: Plan) -> None:
    for name in todo.changed:
        log.warning(
            "sql/%s changed after it was applied here (its checksum differs from the "
            "recorded one); numbered migrations are append-only, so the change is not "
            "applied: put it in a new numbered file (or a repeatable one) instead",
            name,
        )


def _lock(conn: psycopg.Connection, wait: float) -> None:
    """One migrate at a time, waiting at most `wait` seconds for another to finish."""
    timeout = f"{max(1, round(wait * 1000))}ms"
    try:
        with conn.transaction():
            conn.execute("select set_config('lock_timeout', %s, true)", (timeout,))
            conn.execute("select pg_advisory_lock(%s)", (locks.MIGRATION,))
    except psycopg.errors.LockNotAvailable:
        raise UserError(
            f"another migrate holds the schema lock and did not finish within {wait:g} s: "
            "try again when it is done (it is the session holding advisory lock "
            f"{locks.MIGRATION} in pg_locks)"
        ) from None


def _apply(conn: psycopg.Connection, todo: Plan, sql_dir: Path) -> list[str]:
    applied: list[str] = []
    for version, path in todo.numbered:
        with conn.transaction():
            conn.execute(path.read_text())
            conn.execute(
                "insert into schema_migrations (version) values (%s) on conflict do nothing",
                (version,),
            )
        log.info("applied migration %s", path.name)
        applied.append(version)
    record = [path for _, path in todo.numbered] + todo.unrecorded
    with conn.transaction():
        if record and conn.execute("select to_regclass('schema_files') is not null").fetchone()[0]:
            conn.execute(
                "insert into schema_files (name, checksum) "
                "select * from unnest(%s::text[], %s::text[]) on conflict (name) do nothing",
                ([file_name(p, sql_dir) for p in record], [checksum(p) for p in record]),
            )
    for path in todo.repeatable:
        applied.append(_apply_file(conn, path, sql_dir))
    return applied


def _apply_file(conn: psycopg.Connection, path: Path, sql_dir: Path) -> str:
    """Run a repeatable (or opt-in) file and record its checksum, in one transaction."""
    name = file_name(path, sql_dir)
    with conn.transaction():
        conn.execute(path.read_text())
        conn.execute(
            "insert into schema_files (name, checksum) values (%s, %s) on conflict (name) "
            "do update set checksum = excluded.checksum, applied_at = now()",
            (name, checksum(path)),
        )
    log.info("applied %s", name)
    return name


def optional_file(name: str, sql_dir: Path = SQL_DIR) -> Path:
    """The opt-in file `migrate --with NAME` applies; an unknown name is a one-line error."""
    if name not in OPTIONAL:
        raise UserError(f"unknown --with {name!r}: known: {', '.join(sorted(OPTIONAL))}")
    return sql_dir / OPTIONAL[name]


def apply_optional(
    conn: psycopg.Connection,
    name: str,
    sql_dir: Path = SQL_DIR,
    *,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> str:
    """Apply one opt-in file in its own transaction, under the migration lock, and record
    its checksum; return its file name. Opt-in files are idempotent, so it is applied
    every time it is asked for. A file that refuses the database (its checks raise) is
    one line for the owner, and nothing of it stays."""
    path = optional_file(name, sql_dir)
    label = file_name(path, sql_dir)
    if _in_block(conn):
        conn.commit()
    _lock(conn, lock_wait)
    try:
        _apply_file(conn, path, sql_dir)
    except psycopg.OperationalError:
        raise  # the connection is gone: open_database says so
    except psycopg.DatabaseError as exc:
        reason = (exc.diag.message_primary or type(exc).__name__).strip()
        raise UserError(f"--with {name}: sql/{label} was not applied: {reason}") from None
    finally:
        with conn.transaction():
            conn.execute("select pg_advisory_unlock(%s)", (locks.MIGRATION,))
    return label
