"""`sync doctor`: explain what is wrong with a set-up, one line per check, with the fix.

Checks run in the order a set-up is built: settings, database (reachable, migrated,
row level security), the Spotify app's credentials, each user's sign-in, and whether
the schedule is actually running. Doctor only reads: it applies no migration, refreshes
no user token and writes nothing. Exit 1 when something blocks syncing, else 0.
The checks of users and of the last run are in sync/doctor/users.py; Check in sync/doctor/check.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import parse_qs, urlparse

import psycopg

from sync import db
from sync.config import (
    DEFAULT_ACCOUNTS_URL,
    DEFAULT_API_URL,
    Settings,
    load_settings,
    url_password,
)
from sync.config.urlcheck import database_url_problem, transaction_pooler_problem, unquote
from sync.db import schema
from sync.doctor.check import FAIL, OK, SKIP, WARN, Check
from sync.doctor.users import check_last_run, check_users
from sync.errors import UserError
from sync.redact import Redactor
from sync.spotify.client import InvalidClient, SpotifyClient, SpotifyError, TemporaryError
from sync.spotify.oauth import parse_redirect_uri
from sync.text import plural

log = logging.getLogger(__name__)

_SPOTIFY_KEY = re.compile(r"^[0-9a-f]{32}$")


# -- settings (pure) --------------------------------------------------------------------
def check_settings(env: Mapping[str, str]) -> tuple[list[Check], Settings | None]:
    """Each setting present and well formed. Returns the settings when they load at all."""
    url = unquote(env.get("DATABASE_URL", ""))
    problem = database_url_problem(url) if url else None
    if problem:  # said here as every command says it; the other settings are still checked
        others = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "GITHUB_ACTIONS")}
        rest, _ = check_settings(others)
        url_check = Check(FAIL, "DATABASE_URL", problem.detail, problem.fix)
        return [url_check, *(c for c in rest if c.name != "DATABASE_URL")], None
    try:
        settings = load_settings(env)
    except UserError as exc:
        return [Check(FAIL, "settings", str(exc))], None
    checks = [_check_database_url(settings)]
    secret_fix = (
        "copy it from your app in the Spotify developer dashboard (Settings > Basic "
        "Information) into .env and into the repository's Actions secrets"
    )
    for name, value in (
        ("SPOTIFY_CLIENT_ID", settings.client_id),
        ("SPOTIFY_CLIENT_SECRET", settings.client_secret),
    ):
        if not value:
            checks.append(Check(FAIL, name, "not set", secret_fix))
        elif not _SPOTIFY_KEY.match(value):
            checks.append(
                Check(
                    WARN,
                    name,
                    "set, but not 32 hex characters as Spotify issues "
                    "them (a stray quote or a truncated copy?)",
                    secret_fix,
                )
            )
        else:
            checks.append(Check(OK, name, "set"))
    try:
        parse_redirect_uri(settings.redirect_uri)
        checks.append(Check(OK, "SPOTIFY_REDIRECT_URI", settings.redirect_uri))
    except UserError as exc:  # only `login` uses it
        checks.append(Check(WARN, "SPOTIFY_REDIRECT_URI", f"{exc} (only login uses it)"))
    for name, value, default in (
        ("SPOTIFY_API_URL", settings.api_url, DEFAULT_API_URL),
        ("SPOTIFY_ACCOUNTS_URL", settings.accounts_url, DEFAULT_ACCOUNTS_URL),
    ):
        if value != default:
            checks.append(Check(OK, name, f"{value} (instead of Spotify's {default})"))
    checks.append(_check_notify(settings))
    return checks, settings


def _check_notify(settings: Settings) -> Check:
    """Which way the owner's inbox (GitHub issues for problems, sync.notify) is set."""
    name = "SYNC_NOTIFY"
    if not settings.notify:
        return Check(OK, name, "off: problems that need you go to run summaries only")
    if settings.github_token and settings.repository:
        return Check(OK, name, f"on: problems that need you open issues in {settings.repository}")
    return Check(OK, name, "on, but not here: issues are opened only by the GitHub workflow "
                 "(it has GITHUB_TOKEN)")  # fmt: skip


def _check_database_url(settings: Settings) -> Check:
    url = settings.database_url
    if url is None:
        return Check(
            WARN,
            "DATABASE_URL",
            f"not set: using the embedded Postgres in {settings.data_dir}/ on this machine",
            "fine for trying it out; to sync from GitHub Actions put your database's "
            "connection string in .env and in the DATABASE_URL repository secret",
        )
    parsed = urlparse(url)  # load_settings has checked that it parses, port included
    port = parsed.port or 5432
    pooler = transaction_pooler_problem(url)
    if pooler:
        return Check(FAIL, "DATABASE_URL", pooler.detail, pooler.fix)
    host = parsed.hostname or parse_qs(parsed.query).get("host", ["local socket"])[0]
    hostport = f"{host}:{port}"
    dbname = parsed.path.lstrip("/") or "(default database)"
    return Check(OK, "DATABASE_URL", f"set ({hostport}/{dbname})")


# -- database -------------------------------------------------------------------------
def check_database(
    settings: Settings,
    connect: Callable[[str], psycopg.Connection] = db.connect,
    database_url: Callable[[Settings], str] = db.database_url,
) -> tuple[list[Check], psycopg.Connection | None]:
    """Reachable, migrated, row level security on. Returns the open connection when reachable."""
    try:
        conn = connect(database_url(settings))
    except UserError as exc:
        return [Check(FAIL, "database", str(exc))], None
    version = conn.execute("show server_version").fetchone()[0]
    state = schema.read_state(conn)
    conn.rollback()
    too_old = schema.server_version_problem(state.server_version)
    if too_old:
        checks = [Check(FAIL, "database", too_old)]
    else:
        checks = [Check(OK, "database", f"reachable (PostgreSQL {version.split()[0]})")]
    known = [v for v, _ in schema.migrations()]
    pending = schema.plan(state).names()
    unknown = sorted(state.versions - set(known))
    also = "" if settings.database_url is None else (
        "; or paste the files from sql/ and then sql/repeatable/ into Supabase's SQL editor "
        "in order")  # fmt: skip
    if not state.versions:  # nothing to sync into: users and runs cannot even be looked at
        where = f"the embedded database in {settings.data_dir}/" if also == "" else "the database"
        checks.append(Check(FAIL, "migrations", f"{where} has no tables yet",
                            f"python -m sync migrate{also}"))  # fmt: skip
    elif pending:
        checks.append(
            Check(
                WARN,
                "migrations",
                f"{len(pending)} pending ({', '.join(pending)})",
                f"python -m sync migrate (run applies them first too{also})",
            )
        )
    else:
        checks.append(Check(OK, "migrations", f"all {len(known)} applied"))
    if unknown:
        checks.append(
            Check(
                WARN,
                "migrations",
                f"the database has migrations this code lacks ({', '.join(unknown)})",
                "update your fork (Sync fork on GitHub, or git pull)",
            )
        )
    checks.append(_check_rls(conn))
    return checks, conn


def _check_rls(conn: psycopg.Connection) -> Check:
    """Every table next to user_tokens must have row level security on (Supabase's API)."""
    rows = conn.execute(
        """select c.relname, c.relrowsecurity
             from pg_class c
            where c.relkind in ('r', 'p')
              and c.relnamespace = (select relnamespace from pg_class
                                     where oid = to_regclass('user_tokens'))
            order by c.relname"""
    ).fetchall()
    conn.rollback()
    if not rows:
        return Check(SKIP, "row level security", "no tables yet")
    off = [name for name, on in rows if not on]
    if off:
        return Check(
            WARN,
            "row level security",
            f"off on {', '.join(off)}: Supabase's API keys can read those tables",
            "; ".join(f"alter table {name} enable row level security" for name in off),
        )
    return Check(OK, "row level security", f"on for all {len(rows)} tables")


# -- Spotify -----------------------------------------------------------------------
def check_spotify(settings: Settings, client: SpotifyClient | None = None) -> Check:
    """A client credentials token request proves the app's id and secret are accepted."""
    name = "Spotify app"
    if not (settings.client_id and settings.client_secret):
        return Check(SKIP, name, "not checked: client id or secret missing (see above)")
    client = client or SpotifyClient(
        settings.api_url,
        settings.accounts_url,
        settings.client_id,
        settings.client_secret,
        max_retries=1,
        backoff_base=0.5,
        timeout=(5.0, 10.0),
    )
    try:
        client.client_credentials()
    except InvalidClient as exc:
        return Check(
            FAIL,
            name,
            f"Spotify refused the client id and secret ({exc})",
            "copy both again from the app's settings in the developer dashboard; after "
            "'Rotate client secret' the old secret stops working",
        )
    except TemporaryError as exc:
        return Check(
            FAIL,
            name,
            f"could not reach Spotify's accounts service ({exc})",
            "check the network (and SPOTIFY_ACCOUNTS_URL), then try again",
        )
    except SpotifyError as exc:
        return Check(
            FAIL,
            name,
            f"the client credentials request failed ({exc})",
            "check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET",
        )
    return Check(OK, name, "client credentials accepted")


# -- all together ----------------------------------------------------------------
def diagnose(
    env: Mapping[str, str],
    *,
    connect: Callable[[str], psycopg.Connection] = db.connect,
    database_url: Callable[[Settings], str] = db.database_url,
    client: SpotifyClient | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    emit: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Run every check in order; later checks are skipped when what they need is broken."""
    checks: list[Check] = []

    def add(*new: Check) -> None:
        for check in new:
            checks.append(check)
            if emit:
                emit(check)

    found, settings = check_settings(env)
    add(*found)
    if settings is None:
        add(Check(SKIP, "database, Spotify app, users, last run", "not checked: fix the settings"))
        return checks
    found, conn = check_database(settings, connect, database_url)
    add(*found)
    add(check_spotify(settings, client))
    if conn is None:
        add(Check(SKIP, "users, last run", "not checked: the database is not reachable"))
        return checks
    try:
        embedded_dir = settings.data_dir if settings.database_url is None else None
        add(*check_users(conn, now(), settings.show_user_ids, embedded_dir))
        add(check_last_run(conn, now()))
    finally:
        conn.close()
    return checks


def _redactor(env: Mapping[str, str]) -> Redactor:
    redactor = Redactor()
    url = unquote(env.get("DATABASE_URL", ""))
    secret = unquote(env.get("SPOTIFY_CLIENT_SECRET", ""))
    for value in (secret, url, url and url_password(url), env.get("DATABASE_URL")):
        redactor.protect(value or None)
    return redactor


def run_doctor(env: Mapping[str, str], out: TextIO, **kwargs) -> int:
    """Print one line per check as it completes; exit 1 when anything blocks syncing."""
    redactor = _redactor(env)

    def emit(check: Check) -> None:
        out.write(redactor.redact(check.line()) + "\n")
        out.flush()

    checks = diagnose(env, emit=emit, **kwargs)
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    if failed:
        verb = "blocks" if failed == 1 else "block"
        out.write(
            f"doctor: {plural(failed, 'problem')} {verb} syncing ({plural(warned, 'warning')})\n"
        )
    else:
        out.write(f"doctor: nothing blocks syncing ({plural(warned, 'warning')})\n")
    return 1 if failed else 0
