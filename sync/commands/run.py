"""`python -m sync run`: sync every stored user once, then report.

Signals (SIGINT, SIGTERM, SIGHUP; GitHub sends SIGINT, then SIGTERM 7.5 s later, then
SIGKILL): the first stops starting users and wakes every wait, lets the users in flight
commit or roll back, records the partial totals as `interrupted` and exits 130. A second
one exits at once, but never between a token refresh and its save.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from sync import db
from sync.analytics import upkeep as analytics
from sync.commands import Context as CommandContext
from sync.commands import Subcommands, add_user_argument, options_from, positive_int, seconds
from sync.config import Settings
from sync.config.urlcheck import transaction_pooler_problem
from sync.control import RunControl
from sync.db.reconnect import once_more_on_new
from sync.errors import UserError
from sync.job.pipeline import LEASE, STOP_SIGNALS, Context, Options, fair_order, run_sync
from sync.job.results import RunResult
from sync.job.summary import (
    Reporter,
    json_report,
    no_users_message,
    summary_markdown,
    write_step_summary,
)
from sync.names import alias, parse_alias
from sync.notify.inbox import InboxReport, notify_owner
from sync.redact import Redactor
from sync.spotify.client import SpotifyClient
from sync.statuses import RunStatus, UserStatus
from sync.store import runs
from sync.store.runs import Candidate, OpenedRun
from sync.text import plural

log = logging.getLogger(__name__)

_TOTALS = ("users_total", "users_synced", "users_failed", "users_skipped", "tracks_added")


def select_users(stored: Sequence[Candidate], wanted: Sequence[str]) -> list[Candidate]:
    """The users `--user` names (Spotify ids or aliases user-N), or all; UserError if unknown."""
    if not wanted:
        return list(stored)
    chosen: dict[int, Candidate] = {}
    missing = []
    for text in wanted:
        key = parse_alias(text)
        found = [c for c in stored if c.user_id == text or c.key == key]
        if not found:
            missing.append(text)
        chosen.update((c.key, c) for c in found)
    if missing:
        raise UserError(
            f"no active user {', '.join(missing)} in user_tokens: check the id or alias "
            "(python -m sync users lists them) or sign in with python -m sync login"
        )
    return sorted(chosen.values(), key=lambda c: c.key)


class _Signals:
    """Turns the first signal into a stop of the run, a second one into an exit."""

    def __init__(self, control: RunControl, exit_now):
        self.control = control
        self.exit_now = exit_now
        self.received: list[str] = []
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may own signal handlers (tests call main() there)
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) == 1:
            self.control.stop(f"interrupted ({name})")
            busy = self.control.in_flight
            hint = (
                "Ctrl-C again to stop now"
                if signum == signal.SIGINT
                else "a second signal stops now"
            )
            print(f"{name}: starting no more users; finishing {plural(busy, 'user')} in progress "
                  f"({hint})",
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        if self.control.exit_when_safe(self.exit_now):
            print(f"{name}: stopping as soon as a token refresh in progress is saved",
                  file=sys.stderr, flush=True)  # fmt: skip


def refuse_transaction_pooler(database_url: str | None) -> None:
    """Port 6543 is Supabase's transaction pooler: said as doctor and setup say it."""
    problem = transaction_pooler_problem(database_url)
    if problem:
        raise UserError(problem.message())


def add_parser(sub: Subcommands) -> None:
    run = sub.add_parser("run", help="sync recently played tracks for every stored user")
    add_user_argument(
        run, "sync only this user: Spotify id or alias user-N (repeatable)", many=True
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="fetch and report, but write no plays and no run record",
    )
    run.add_argument(
        "--max-tracks",
        type=positive_int,
        default=1000,
        metavar="N",
        help="most plays to read per user (default 1000)",
    )
    run.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="users synced in parallel (default 4)",
    )
    run.add_argument(
        "--time-budget",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="end the run within this long, waits included (e.g. 600, 10m)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: CommandContext) -> int:
    """The run protects each token it sees in the command line's redactor."""
    return cmd_run(ctx.settings, ctx.redactor, options_from(RunOptions, args))


@dataclass(frozen=True)
class RunOptions:
    """`run`'s flags (each field is its flag's dest)."""

    user: Sequence[str] = ()
    dry_run: bool = False
    max_tracks: int = 1000
    concurrency: int = 4
    time_budget: float | None = None
    json: bool = False


def cmd_run(settings: Settings, redactor: Redactor, flags: RunOptions) -> int:
    refuse_transaction_pooler(settings.database_url)
    url = db.database_url(settings)
    control = RunControl(flags.time_budget)
    with db.open_database(settings) as conn:
        conn.autocommit = True  # every statement below is its own transaction: no BEGIN trips
        users = fair_order(select_users(runs.candidates(conn), flags.user))
        if any(u.status == UserStatus.ACTIVE for u in users):
            settings.require_spotify_credentials()
        options = Options(
            dry_run=flags.dry_run, max_tracks=flags.max_tracks, concurrency=flags.concurrency
        )
        client = SpotifyClient(
            settings.api_url,
            settings.accounts_url,
            settings.client_id or "",
            settings.client_secret,
            pool_size=flags.concurrency,
            control=control,
        )
        reporter = Reporter(
            redactor,
            sys.stderr,
            show_ids=settings.show_user_ids,
            github_actions=settings.in_github_actions,
        )
        opened = None if flags.dry_run else _open_run(conn, settings, control)
        run_id = opened.run_id if opened else None

        def name(key: int, user_id: str) -> str:
            return alias(key, user_id, settings.show_user_ids)

        ctx = Context(client=client, redactor=redactor, options=options, control=control,
                      name=name)  # fmt: skip
        result = _sync_users(url, conn, users, ctx, run_id, reporter)
        result.killed_runs = opened.killed if opened else []
        if result.interrupted:
            status = RunStatus.INTERRUPTED
        else:
            status = RunStatus.FAILED if result.exit_code else RunStatus.OK
        conn = close_run(url, conn, run_id, status, result)
        inbox = None
        if conn is not None and not flags.dry_run and not result.interrupted:
            inbox = notify_owner(conn, settings, result, datetime.now(UTC))
        details = ""  # listening details only when the owner opts in (SYNC_SUMMARY_DETAILS)
        if settings.summary_details and settings.step_summary_path and conn is not None:
            details = analytics.summary_section(
                conn, [(u.key, reporter.name(u)) for u in result.users]
            )
    result.duration_s = control.clock() - control.started  # the command's, database start too
    _report(settings, redactor, reporter, result, inbox, details, nobody=not users,
            as_json=flags.json)  # fmt: skip
    return result.exit_code


def _open_run(conn: psycopg.Connection, settings: Settings, control: RunControl) -> OpenedRun:
    """The run's record, alive for the budget plus a lease; runs found killed are said."""
    budget = control.remaining()
    alive_for = LEASE + (timedelta(seconds=budget) if budget is not None else LEASE)
    opened = runs.open_run(conn, settings.trigger, settings.run_url, alive_for)
    for run_id, started in opened.killed:
        log.warning("run %d (started %s UTC) never finished: it was killed; "
                    "recorded as killed", run_id, f"{started:%Y-%m-%d %H:%M}")  # fmt: skip
    return opened


def _sync_users(
    url: str,
    conn: psycopg.Connection,
    users: list[Candidate],
    ctx: Context,
    run_id: int | None,
    reporter: Reporter,
) -> RunResult:
    """run_sync under the run's signal handlers; a bug, not a user's trouble, still leaves a
    true record."""

    def exit_now() -> None:
        close_run(url, conn, run_id, RunStatus.INTERRUPTED, None)
        os._exit(130)

    signals = _Signals(ctx.control, exit_now)
    signals.install()
    result: RunResult | None = None
    try:
        result = run_sync(url, db.connect, users, ctx, run_id=run_id,
                          on_result=reporter.user_done)  # fmt: skip
    finally:
        signals.restore()
        if result is None:
            close_run(url, conn, run_id, RunStatus.FAILED, None)
    result.interrupted = bool(signals.received)
    return result


def _report(
    settings: Settings,
    redactor: Redactor,
    reporter: Reporter,
    result: RunResult,
    inbox: InboxReport | None,
    details: str,
    *,
    nobody: bool,
    as_json: bool,
) -> None:
    """The totals, the next step when nobody was synced, the step summary, --json."""
    reporter.finish(result)
    if nobody:  # after the totals: the next step is the last line to read
        no_users = no_users_message(None if settings.database_url else settings.data_dir)
        print(no_users, file=sys.stderr)
        if settings.in_github_actions:
            print(f"::warning title=No users::{no_users}", file=sys.stderr)
    inbox_line = _inbox_line(inbox)
    if inbox_line:
        log.info("%s", inbox_line)
    if inbox is not None and inbox.warning:
        log.warning("warning: %s", inbox.warning)
    if settings.step_summary_path:
        write_step_summary(
            settings.step_summary_path,
            summary_markdown(result, reporter.name, settings.run_url)
            + (f"\n{inbox_line}\n" if inbox_line else "")
            + details,
            redactor,
        )
    if as_json:
        print(redactor.redact(json_report(result, reporter.name)))


def _inbox_line(inbox: InboxReport | None) -> str | None:
    """One line on what the run changed in the owner's issues, or None."""
    if inbox is None:
        return None
    parts = [
        f"{verb} {', '.join(f'#{n}' for n in numbers)}"
        for verb, numbers in (
            ("opened", inbox.opened),
            ("updated", inbox.updated),
            ("closed", inbox.closed),
        )  # fmt: skip
        if numbers
    ]
    return f"Issues for the owner: {'; '.join(parts)}." if parts else None


def close_run(
    url: str,
    conn: psycopg.Connection | None,
    run_id: int | None,
    status: RunStatus,
    result: RunResult | None,
) -> psycopg.Connection | None:
    """Finish the run's row, on a fresh connection if the run's own one was lost.

    Returns a usable connection (or None). Never raises: a run whose record cannot be
    finished is closed as killed by the next run.
    """
    if run_id is None:
        return conn
    totals = result.totals() if result else dict.fromkeys(_TOTALS, 0)

    def fresh() -> psycopg.Connection:
        new = db.connect(url)
        new.autocommit = True
        return new

    def finish(usable: psycopg.Connection) -> psycopg.Connection:
        runs.finish_run(usable, run_id, status, totals)
        return usable

    def said(exc: BaseException, again: str = "") -> None:
        log.warning("could not finish the run record (%s)%s", type(exc).__name__, again)

    try:  # any database error, not only a lost connection: the record is worth a second try
        return once_more_on_new(
            finish,
            lambda: fresh() if conn is None or conn.closed or conn.broken else conn,
            new=fresh,
            lost=lambda _conn, exc: isinstance(exc, psycopg.Error | UserError),
            on_lost=lambda exc: said(exc, "; trying a new connection"),
        )
    except (psycopg.Error, UserError) as exc:
        said(exc)
        return None
