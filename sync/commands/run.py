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
from datetime import UTC, datetime, timedelta

import psycopg

from sync import db
from sync.analytics import upkeep as analytics
from sync.config import Settings
from sync.config.urlcheck import transaction_pooler_problem
from sync.control import RunControl
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
from sync.store.runs import Candidate
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


def cmd_run(args: argparse.Namespace, settings: Settings, redactor: Redactor) -> int:
    refuse_transaction_pooler(settings.database_url)
    url = db.database_url(settings)
    control = RunControl(args.time_budget)
    with db.open_database(settings) as conn:
        conn.autocommit = True  # every statement below is its own transaction: no BEGIN trips
        users = fair_order(select_users(runs.candidates(conn), args.user))
        if any(u.status == UserStatus.ACTIVE for u in users):
            settings.require_spotify_credentials()
        options = Options(
            dry_run=args.dry_run, max_tracks=args.max_tracks, concurrency=args.concurrency
        )
        client = SpotifyClient(
            settings.api_url,
            settings.accounts_url,
            settings.client_id or "",
            settings.client_secret,
            pool_size=args.concurrency,
            control=control,
        )
        reporter = Reporter(
            redactor,
            sys.stderr,
            show_ids=settings.show_user_ids,
            github_actions=settings.in_github_actions,
        )
        opened = None
        if not args.dry_run:
            budget = control.remaining()
            alive_for = LEASE + (timedelta(seconds=budget) if budget is not None else LEASE)
            opened = runs.open_run(conn, settings.trigger, settings.run_url, alive_for)
            for run_id, started in opened.killed:
                log.warning("run %d (started %s UTC) never finished: it was killed; "
                            "recorded as killed", run_id, f"{started:%Y-%m-%d %H:%M}")  # fmt: skip
        run_id = opened.run_id if opened else None

        def exit_now() -> None:
            close_run(url, conn, run_id, RunStatus.INTERRUPTED, None)
            os._exit(130)

        def name(key: int, user_id: str) -> str:
            return alias(key, user_id, settings.show_user_ids)

        ctx = Context(client=client, redactor=redactor, options=options, control=control,
                      name=name)  # fmt: skip
        signals = _Signals(control, exit_now)
        signals.install()
        result: RunResult | None = None
        try:
            result = run_sync(url, db.connect, users, ctx, run_id=run_id,
                              on_result=reporter.user_done)  # fmt: skip
        finally:
            signals.restore()
            if result is None:  # a bug, not a user's trouble: still leave a true record
                close_run(url, conn, run_id, RunStatus.FAILED, None)
        result.interrupted = bool(signals.received)
        result.killed_runs = opened.killed if opened else []
        if result.interrupted:
            status = RunStatus.INTERRUPTED
        else:
            status = RunStatus.FAILED if result.exit_code else RunStatus.OK
        conn = close_run(url, conn, run_id, status, result)
        inbox = None
        if conn is not None and not args.dry_run and not result.interrupted:
            inbox = notify_owner(conn, settings, result, datetime.now(UTC))
        details = ""  # listening details only when the owner opts in (SYNC_SUMMARY_DETAILS)
        if settings.summary_details and settings.step_summary_path and conn is not None:
            details = analytics.summary_section(
                conn, [(u.key, reporter.name(u)) for u in result.users]
            )
    result.duration_s = control.clock() - control.started  # the command's, database start too
    reporter.finish(result)
    if not users:  # after the totals: the next step is the last line to read
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
    if args.json:
        print(redactor.redact(json_report(result, reporter.name)))
    return result.exit_code


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
    for attempt in range(2):
        try:
            if conn is None or conn.closed or conn.broken:
                conn = db.connect(url)
                conn.autocommit = True
            runs.finish_run(conn, run_id, status, totals)
            return conn
        except (psycopg.Error, UserError) as exc:
            log.warning("could not finish the run record (%s)%s", type(exc).__name__,
                        "; trying a new connection" if attempt == 0 else "")  # fmt: skip
            conn = None
    return None
