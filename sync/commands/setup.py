"""`python -m sync setup`: everything after the clone, in one command that can run again.

Five steps: the Spotify app, the database, then .env + migrate + sign-in, GitHub, and
doctor's verdict with the next scheduled run. Each value comes from its flag, else the
environment (.env included), else a prompt; what already works is checked and skipped.
Exit 0 when doctor finds nothing that blocks syncing, 1 when it does, 2 for a value
that is missing (no terminal to ask) or refused.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sync import db
from sync.commands import Context, Subcommands, options_from, seconds
from sync.commands.login import cmd_login
from sync.config import DEFAULT_REDIRECT_URI, load_settings, url_password
from sync.config.urlcheck import is_placeholder
from sync.db import schema
from sync.doctor.checkup import FAIL, Check, run_doctor
from sync.doctor.users import check_users
from sync.errors import UserError
from sync.redact import Redactor
from sync.setup.checks import (
    database_checks,
    local_env,
    next_scheduled,
    spotify_checks,
    spotify_offline,
    workflow_cron,
)
from sync.setup.envfile import ensure_ignored, write_env
from sync.setup.github import GithubOptions, github_step
from sync.setup.prompts import SetupIO, clean_value, confirm, need, secrets_out_of_environ
from sync.signin.flow import LoginIO
from sync.spotify.oauth import LoginFailed
from sync.text import plural

log = logging.getLogger(__name__)

MAX_TRIES = 3
EMBEDDED = ""  # the answer meaning "the embedded database"
T = TypeVar("T")


def add_parser(sub: Subcommands) -> None:
    setup = sub.add_parser("setup", help="set everything up after the clone; safe to run again")
    setup.add_argument("--client-id", metavar="ID", help="the Spotify app's client id")
    setup.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="the app's client secret (better: env SPOTIFY_CLIENT_SECRET, off the command line)",
    )
    setup.add_argument(
        "--database-url",
        metavar="URL",
        help="Postgres connection string (or env DATABASE_URL); 'embedded' or '' for the "
        "embedded database",
    )
    setup.add_argument("--yes", action="store_true", help="accept every default, gh steps included")
    setup.add_argument(
        "--no-github", action="store_true", help="print the GitHub steps, don't use gh"
    )
    setup.add_argument("--headless", action="store_true", help="sign in without a browser here")
    setup.add_argument("--skip-login", action="store_true", help="don't sign an account in now")
    setup.add_argument(
        "--sign-in", action="store_true", help="sign an account in although every one works"
    )
    setup.add_argument(
        "--replace-secrets", action="store_true", help="set the repository secrets again"
    )
    setup.add_argument(
        "--new-run", action="store_true", help="start a run although the latest one succeeded"
    )
    setup.add_argument(
        "--wait",
        type=seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the first GitHub run (default 10m)",
    )
    # asks for the settings itself, protecting each answer in the command line's redactor
    setup.set_defaults(handler=_handler, own_settings=True)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_setup(options_from(SetupOptions, args), ctx.redactor)


@dataclass(frozen=True)
class SetupOptions:
    """`setup`'s flags (each field is its flag's dest)."""

    client_id: str | None = None
    client_secret: str | None = None
    database_url: str | None = None
    yes: bool = False
    no_github: bool = False
    headless: bool = False
    skip_login: bool = False
    sign_in: bool = False
    replace_secrets: bool = False
    new_run: bool = False
    wait: float = 600.0


def _settle(io: SetupIO, given: T | None, ask: Callable[[], T],
            check: Callable[[T], list[Check]], offline: Callable[[Check], bool] = lambda c: False,
            ) -> T:  # fmt: skip
    """Check the given value (or ask for one) until the checks pass; no terminal: stop.

    A failure that is the network's, not the value's (`offline`), offers to check the same
    value again or keep it unchecked, instead of asking for another value.
    """
    value = given
    for _ in range(MAX_TRIES):
        if value is None:
            value = ask()
        checks = check(value)
        failed = next((c for c in checks if c.status == FAIL), None)
        for found in checks:
            if io.interactive or found is not failed:  # no terminal: the error line says it
                io.say("  " + found.line())
        if failed is None:
            return value
        if not io.interactive:
            raise UserError(_problem(failed))
        while offline(failed):
            if not confirm(io, "  Check again?", True, assume_yes=False):
                io.say("  kept unchecked: doctor checks them again at the end")
                return value
            failed = next((c for c in check(value) if c.status == FAIL), None)
            if failed is None:
                io.say("  ok: checked")
                return value
            io.say("  " + failed.line())
        value = None
    raise UserError(f"{_problem(failed)}; still failing after {MAX_TRIES} tries: fix it, then "
                    "run python -m sync setup again")  # fmt: skip


def _problem(check: Check) -> str:
    """A failed check as one error line: the name once, no status word (the CLI adds error:)."""
    return f"{check.name}: {check.detail}" + (f" -> fix: {check.fix}" if check.fix else "")


def _given(io: SetupIO, name: str, flag_value: str | None, env: Mapping[str, str]) -> str | None:
    raw = flag_value if flag_value is not None else env.get(name)
    value = clean_value(name, raw) if raw else None
    _protect(io, value)
    return value


def _protect(io: SetupIO, value: str | None) -> None:
    """Keep a value, and a connection string's password, out of everything printed."""
    io.redactor.protect(value)
    password = url_password(value) if value and "://" in value else None
    if password and not is_placeholder(password):  # Supabase's [YOUR-PASSWORD] is no secret
        io.redactor.protect(password)


def spotify_step(io: SetupIO, flags: SetupOptions, env: Mapping[str, str]) -> tuple[str, str]:
    redirect = env.get("SPOTIFY_REDIRECT_URI") or DEFAULT_REDIRECT_URI
    io.say("1/5 Spotify app")
    partial = [_given(io, "SPOTIFY_CLIENT_ID", flags.client_id, env),
               _given(io, "SPOTIFY_CLIENT_SECRET", flags.client_secret, env)]  # fmt: skip
    if all(partial):
        io.say("  client id and secret given (flag, environment or .env): checking them")
    else:
        io.say(
            "  In the Spotify developer dashboard (developer.spotify.com/dashboard), Create app:"
        )
        io.say(f"    Redirect URIs: {redirect}   (exactly this; Add, then Save)")
        io.say("    Which API/SDKs are you planning to use?  Web API")
        io.say("  Then, in the app:")
        io.say("    User Management: add the name and Spotify e-mail of each account to sync")
        io.say("      (at most 5 for a new app); only those accounts can sign in.")
        io.say("    The app owner's Spotify account needs Premium, or the app stops working.")
        io.say("    Settings > Basic Information: copy Client ID, then View client secret.")

    def ask() -> tuple[str, str]:
        cid = partial[0] or need(io, "SPOTIFY_CLIENT_ID", "--client-id", "Client ID: ")
        secret = partial[1] or need(
            io, "SPOTIFY_CLIENT_SECRET", "--client-secret (or env SPOTIFY_CLIENT_SECRET)",
            "Client secret (input hidden): ", secret=True)  # fmt: skip
        partial[:] = [None, None]  # a second try asks for both again
        io.redactor.protect(cid)
        return cid, secret

    given = (partial[0], partial[1]) if all(partial) else None
    if given:
        partial[:] = [None, None]  # refused: ask for both
    cid, secret = _settle(io, given, ask, lambda v: spotify_checks(env, *v), spotify_offline)
    if given:
        io.say(f"  done; make sure the app lists {redirect} under Redirect URIs and each "
               "account under User Management")  # fmt: skip
    return cid, secret


def database_step(io: SetupIO, flags: SetupOptions, env: Mapping[str, str]) -> str:
    """The connection string, or EMBEDDED."""
    io.say("2/5 Database")
    if flags.database_url is not None:
        given = flags.database_url.strip()
        given = (
            EMBEDDED if given.lower() in ("", "embedded") else clean_value("DATABASE_URL", given)
        )
    else:
        given = _given(io, "DATABASE_URL", None, env)
    if given is None:
        io.say("  Supabase: New project, then Connect > Session pooler: copy the connection")
        io.say("  string and put your database password in place of [YOUR-PASSWORD].")
        io.say("  Any PostgreSQL 15+ reachable from the internet works the same way.")
        io.say("  Empty answer: an embedded Postgres in .data/ on this machine, for trying it")
        io.say("  out; GitHub Actions cannot see it.")

    def ask() -> str:
        url = need(io, "DATABASE_URL", "--database-url URL (or env DATABASE_URL; 'embedded' for "
                   "the embedded database)", "Connection string (input hidden; empty: "
                   "embedded): ", secret=True, allow_empty=True)  # fmt: skip
        _protect(io, url)
        return EMBEDDED if url.lower() == "embedded" else url

    _protect(io, given)
    url = _settle(io, given, ask, lambda url: database_checks(env, url or None))
    if url == EMBEDDED:
        io.say("  the embedded database is for trying it out: GitHub Actions cannot see it")
    return url


def local_step(io: SetupIO, flags: SetupOptions, values: dict[str, str],
               env: Mapping[str, str], workdir: Path) -> list[str]:  # fmt: skip
    """Write .env, create the tables, sign the first account in; return what .env changed."""
    io.say("3/5 .env, tables and sign-in")
    path = workdir / ".env"
    changed = write_env(path, values)
    io.say(f"  wrote {path} (readable by you only): " + (
        f"{', '.join(changed)} set" if changed else "already up to date"))  # fmt: skip
    if ensure_ignored(workdir):
        io.say("  added .env to .gitignore, so it is never committed")
    settings = load_settings(local_env(env, **{k: v or None for k, v in values.items()}))
    with db.open_database(settings, migrate=False) as conn:
        with _quiet(schema.log):  # one line here; `migrate` itself names each file
            applied = schema.migrate(conn)
        io.say(f"  tables: {plural(len(applied), 'migration')} applied" if applied
               else "  tables: up to date")  # fmt: skip
        users = check_users(conn, io.now(), settings.show_user_ids)
    if any(c.status == FAIL and c.name == "users" for c in users):  # nobody yet
        if flags.skip_login:
            io.say("  sign-in skipped (--skip-login): run python -m sync setup again (or "
                   "python -m sync login) before the first sync")  # fmt: skip
            return changed
    elif flags.sign_in:
        io.say("  --sign-in: signing an account in")
    elif any(c.status == FAIL for c in users):  # a sign-in that no longer works
        for found in users:
            io.say("  " + found.line())
        if not confirm(io, "  Sign that account in again now?", True, assume_yes=flags.yes):
            return changed
    else:
        for found in users:
            io.say("  done: " + found.line())
        return changed
    login_io = LoginIO(out=io.out, read_line=io.read_line, now=io.now)
    try:
        cmd_login(settings, headless=flags.headless, io=login_io)
    except LoginFailed as exc:  # setup is what to run again: login alone skips GitHub
        raise UserError(str(exc).replace("python -m sync login", "python -m sync setup")) from None
    return changed


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only warnings from this logger for a while (setup sums up what it would list)."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def cmd_setup(
    flags: SetupOptions,
    redactor: Redactor | None = None,
    io: SetupIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Settings come from flags, then the environment (.env loaded by the CLI), then prompts."""
    io = io or SetupIO(redactor=redactor or Redactor())
    env = dict(os.environ if env is None else env)
    with secrets_out_of_environ():  # what setup starts gets no secret: they are in `env`
        return _setup(flags, io, env)


def _setup(flags: SetupOptions, io: SetupIO, env: dict[str, str]) -> int:
    io.say("python -m sync setup: five steps; what works already is checked and skipped.")
    client_id, client_secret = spotify_step(io, flags, env)
    url = database_step(io, flags, env)
    values = {"DATABASE_URL": url, "SPOTIFY_CLIENT_ID": client_id,
              "SPOTIFY_CLIENT_SECRET": client_secret}  # fmt: skip
    changed = local_step(io, flags, values, env, Path.cwd())

    io.say("4/5 GitHub")
    if url == EMBEDDED:
        io.say("  skipped: the embedded database is on this machine, GitHub Actions cannot "
               "reach it; run setup again with your database's connection string")  # fmt: skip
    else:
        options = GithubOptions(flags.no_github, flags.yes, flags.wait, flags.replace_secrets,
                                flags.new_run, tuple(changed))  # fmt: skip
        github_step(io, values, options)

    io.say("5/5 What doctor says")
    final = local_env(env, **{k: v or None for k, v in values.items()})
    code = run_doctor(final, io.out, now=io.now)
    cron = workflow_cron()
    at = next_scheduled(cron, io.now()) if cron else None
    if at is not None:
        minutes = int((at - io.now()).total_seconds() // 60)
        io.say(f"Next scheduled run: {at:%Y-%m-%d %H:%M} UTC (in {minutes} min; cron "
               f"'{cron}', GitHub often starts scheduled runs a few minutes late)")  # fmt: skip
    elif cron:
        io.say(f"Schedule: cron '{cron}' (UTC), in .github/workflows/sync.yml")
    return code
