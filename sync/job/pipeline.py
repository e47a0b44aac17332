"""The sync job: per user claim -> token -> fetch -> store, in a bounded pool, isolated per user.

Rules this module keeps (docs/operations.md explains them):
- A user's state is read when the run claims the user (one UPDATE), never from a copy
  loaded at the start; token writes are compare-and-set (sync.job.tokens).
- Every wait obeys the run's RunControl: a signal or the time budget stops the run,
  users not started are reported skipped with the reason, in-flight users finish.
- One user's trouble (Spotify, a dropped database connection) never stops the others:
  connecting, claiming and writing happen inside the per-user isolation, and a lost
  connection is replaced once per user.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from sync.control import RunControl, Stopped
from sync.db.reconnect import connection_lost, once_more_on_new
from sync.job import tokens
from sync.job.fetch import fetch_window
from sync.job.results import RunResult, UserResult
from sync.job.transform import parse_items
from sync.redact import Redactor
from sync.spotify.client import (
    AppOwnerNotPremium,
    Forbidden,
    InvalidClient,
    RateLimited,
    SpotifyClient,
    Unauthorized,
)
from sync.statuses import AppProblem, Outcome, UserStatus, WarningCode
from sync.store import outcome
from sync.store import users as user_store
from sync.store.runs import Candidate

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # sync.commands.run handles them
LEASE = user_store.LEASE  # one home: store/users.py, beside the claim
LOCKED_WARNING_AFTER = timedelta(hours=3)  # a user held by another run this long: a warning
LOCK_TIMEOUT = "15s"  # longest wait for a table or row lock (an import, maintenance)
STATEMENT_TIMEOUT = "5min"  # longest any one statement of the job may run
# Why the run stopped when Spotify refused the whole app: the reason users not started
# are skipped with (and how a skip is traced back to the app's problem).
APP_STOP_REASONS = {
    AppProblem.INVALID_CLIENT: "Spotify refused the app's credentials",
    AppProblem.PREMIUM_LAPSED: "Spotify stopped the app: its owner's Premium lapsed",
}
APP_STOPPED = {reason: problem for problem, reason in APP_STOP_REASONS.items()}


@dataclass
class Options:
    dry_run: bool = False
    max_tracks: int = 1000
    concurrency: int = 4


@dataclass
class Context:
    client: SpotifyClient
    redactor: Redactor
    options: Options
    control: RunControl
    name: Callable[[int, str], str]  # (key, Spotify id) -> what logs call the user
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def fair_order(users: Sequence[Candidate]) -> list[Candidate]:
    """Never-attempted users first, then the longest-waiting: a time budget that runs out
    every hour must not starve the same users every hour."""
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(users, key=lambda u: (u.last_attempt is not None, u.last_attempt or never, u.key))


def _not_claimed(res: UserResult, claim: user_store.Claim, user: Candidate, now: datetime) -> None:
    """Fill the result for a user this run could not claim."""
    if claim.busy:
        res.status = Outcome.SKIPPED
        if claim.held_until:
            res.error = f"another run is syncing this user (until {claim.held_until:%H:%M} UTC)"
        else:  # no claim, but the row is locked: an import or a removal in progress
            res.error = "an import or removal is working on this user"
        since = user.last_attempt or user.created_at
        if now - since > LOCKED_WARNING_AFTER:
            res.warn(
                WarningCode.LOCKED_LONG,
                f"not synced since {since:%Y-%m-%d %H:%M} UTC: another run keeps holding this "
                "user; stop it, or wait "
                f"for its claim to expire ({int(LEASE.total_seconds() // 60)} min after it dies)",
            )
    elif claim.status == UserStatus.NEEDS_REAUTH:
        res.status = Outcome.NEEDS_REAUTH
        res.warn(WarningCode.NEEDS_SIGN_IN, "needs to sign in again (python -m sync login)")
    else:  # removed, or deleted, since the run started
        res.status = Outcome.SKIPPED
        res.error = "the user was removed during the run"


def sync_user(
    conn: psycopg.Connection, ctx: Context, user: Candidate, holder: int, run_id: int | None
) -> UserResult:
    """Sync one user and write its outcome. Raises on failure; the caller records those."""
    res = UserResult(key=user.key, user_id=user.user_id, started_at=ctx.now())
    if user.status == UserStatus.NEEDS_REAUTH:
        res.status = Outcome.NEEDS_REAUTH
        res.warn(WarningCode.NEEDS_SIGN_IN, "needs to sign in again (python -m sync login); "
                 "not synced")  # fmt: skip
        _finish(conn, run_id, holder, res)
        return res
    claim = user_store.claim(conn, user.key, holder, LEASE)
    if claim.user is None:
        _not_claimed(res, claim, user, ctx.now())
        _finish(conn, run_id, holder, res)
        return res
    state = claim.user
    who = ctx.name(user.key, user.user_id)
    ctx.redactor.protect(state.refresh_token)
    ctx.redactor.protect(state.access_token)
    now = ctx.now()
    warning = tokens.expiry_warning(state, now)
    if warning:
        res.warn(WarningCode.TOKEN_EXPIRING, warning)

    token = tokens.cached_access_token(state, now)
    if token is None:
        with ctx.control.critical():  # a rotated token is saved before any hard exit
            token, state = tokens.refresh_access_token(
                conn, ctx.client, state, now, ctx.redactor.protect, who
            )
    try:
        items, possible_gap = fetch_window(
            ctx.client, token, claim.newest_played_at, ctx.options.max_tracks, who
        )
    except Unauthorized:
        # Exactly one refresh and one retry, with the token as stored now (a refresh above
        # may have rotated it).
        with ctx.control.critical():
            token, state = tokens.refresh_access_token(
                conn, ctx.client, state, ctx.now(), ctx.redactor.protect, who
            )
        items, possible_gap = fetch_window(
            ctx.client, token, claim.newest_played_at, ctx.options.max_tracks, who
        )
    plays, skipped = parse_items(items, claim.recent_played_at)  # only what is not stored
    res.fetched = len(items)
    res.skipped_items = skipped
    res.possible_gap = possible_gap
    if possible_gap:
        res.warn(
            WarningCode.POSSIBLE_GAP,
            "possible gap: all 50 plays in Spotify's window are new, so older plays since the "
            "last sync may be lost (sync more often, or import your Spotify data export)",
        )
    if ctx.options.dry_run:  # count what would be new, write nothing
        with conn.transaction() as tx:
            res.new_tracks = len(outcome.save(conn, user.key, holder, None, _row(res), plays))
            raise psycopg.Rollback(tx)
        _finish(conn, run_id, holder, res)
    else:
        new = outcome.save(conn, user.key, holder, run_id, _row(res), plays, LEASE)
        res.new_tracks = len(new)
    return res


def _row(res: UserResult) -> dict:
    """The sync_run_users columns of a result, as sync_store_user reads them."""
    return {
        "status": str(res.status),
        "started_at": res.started_at.isoformat() if res.started_at else None,
        "fetched": res.fetched,
        "skipped_items": res.skipped_items,
        "possible_gap": res.possible_gap,
        "error_class": res.error_class,
        "error": res.error,
        "warnings": [n.text for n in res.warnings],
    }


def _finish(conn: psycopg.Connection, run_id: int | None, holder: int, res: UserResult) -> None:
    """Record an outcome without plays and give the user back: one statement."""
    outcome.save(conn, res.key, holder, run_id, _row(res), (), LEASE)


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, tokens.NeedsReauth):
        return "NeedsReauth", f"Spotify refused the refresh token ({exc}); sign in again"
    if isinstance(exc, psycopg.Error):
        first = (str(exc).strip().splitlines() or [""])[0]
        return type(exc).__name__, f"database error: {first}"[:300]
    name = getattr(exc, "recorded_as", None) or type(exc).__name__
    return name, (str(exc) or type(exc).__name__)[:300]


class _Connections:
    """One database connection per worker thread; a broken one is replaced on demand."""

    def __init__(self, url: str, connect: Callable[[str], psycopg.Connection]):
        self._url = url
        self._connect = connect
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect(self._url)
            conn.autocommit = True
            # No wait is unbounded: a bulk import holds table locks for its whole run.
            conn.execute(f"set lock_timeout = '{LOCK_TIMEOUT}'; "
                         f"set statement_timeout = '{STATEMENT_TIMEOUT}'")  # fmt: skip
            with self._lock:
                self._all.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()


def run_sync(
    url: str,
    connect: Callable[[str], psycopg.Connection],
    users: list[Candidate],
    ctx: Context,
    *,
    run_id: int | None,
    on_result: Callable[[UserResult], None] | None = None,
) -> RunResult:
    """Sync every user in a bounded pool; one user's failure never stops the others."""
    control = ctx.control
    started = control.clock()
    conns = _Connections(url, connect)
    holder = run_id if run_id is not None else -secrets.randbelow(2**62) - 1
    app_problems: list[AppProblem] = []  # app-wide refusals met, first first

    def refuse_app(res: UserResult, problem: AppProblem, error_class: str, error: str) -> None:
        """Spotify refused the whole app: stop the run (users not started are skipped with
        the reason) and fail the user that met it; reports say the fix once, for the run."""
        app_problems.append(problem)  # before stop(): whoever sees the stop sees the problem
        control.stop(APP_STOP_REASONS[problem])
        res.status, res.error_class, res.error = Outcome.FAILED, error_class, error
        res.app_problem = problem

    def attempt(user: Candidate) -> UserResult:
        res = UserResult(user.key, user.user_id, started_at=ctx.now())
        pending: tokens.PendingTokens | None = None
        for try_no in (1, 2):
            conn = None
            try:
                control.check()
                conn = conns.get()
                if pending is not None:  # Spotify's rotated token first, before anything
                    with control.critical():
                        tokens.save_pending(conn, pending)
                    pending = None
                return sync_user(conn, ctx, user, holder, run_id)
            except tokens.TokensNotSaved as exc:
                pending = exc.pending
                if try_no == 1:
                    who = ctx.name(user.key, user.user_id)
                    log.warning("%s: database connection lost before the refreshed token was "
                                "saved; saving it on a new one", who)  # fmt: skip
                    continue
                res.status, res.error_class = Outcome.FAILED, "TokensNotSaved"
                res.error = (
                    "Spotify refreshed the token but the database went away twice before it "
                    "was saved; if the next run reports invalid_grant, sign in again"
                )
            except Stopped as exc:
                res.status, res.error = Outcome.SKIPPED, exc.reason
                res.app_problem = APP_STOPPED.get(exc.reason)  # not started: the app is refused
            except RateLimited as exc:  # per app: the client stopped the run for everyone
                res.status, res.error = Outcome.SKIPPED, str(exc)
            except InvalidClient as exc:  # the app's credentials are wrong for everyone
                refuse_app(
                    res,
                    AppProblem.INVALID_CLIENT,
                    "InvalidClient",
                    f"Spotify refuses the app's credentials ({exc}): check SPOTIFY_CLIENT_ID "
                    "and SPOTIFY_CLIENT_SECRET against the app in Spotify's developer "
                    "dashboard, then the next run continues",
                )
            except AppOwnerNotPremium as exc:  # the whole app is stopped, not this user
                refuse_app(res, AppProblem.PREMIUM_LAPSED, "AppOwnerNotPremium", str(exc))
            except tokens.NeedsReauth as exc:
                res.status, res.newly_needs_reauth = Outcome.NEEDS_REAUTH, True
                res.error_class, res.error = _describe(exc)
            except tokens.UserChanged as exc:
                res.status, res.error = Outcome.SKIPPED, str(exc)
            except psycopg.errors.LockNotAvailable:
                res.status = Outcome.SKIPPED
                res.error = (f"the database is busy (a lock held longer than {LOCK_TIMEOUT}: an "
                             "import or maintenance); the next run continues")  # fmt: skip
            except Forbidden as exc:
                res.error_class, res.error = _describe(exc)
                if user.last_outcome in (Outcome.REFUSED, Outcome.FAILED) and (
                    user.last_error_class == Forbidden.recorded_as
                ):
                    res.status = Outcome.REFUSED  # known: a warning, not an hourly e-mail
                    res.warn(WarningCode.NOT_ALLOWED, res.error)
                else:
                    res.status = Outcome.FAILED
            except Exception as exc:  # anything else fails this user only, never the others
                if connection_lost(conn, exc) and try_no == 1:
                    log.warning("%s: database connection lost; retrying with a new one",
                                ctx.name(user.key, user.user_id))  # fmt: skip
                    continue
                res.status = Outcome.FAILED
                res.error_class, res.error = _describe(exc)
            break
        res.error = ctx.redactor.redact(res.error) if res.error else None
        _record_failure(conns, run_id, holder, res)
        return res

    def work(user: Candidate) -> UserResult:
        """Attempt one user, then log the result whatever it was (skips too)."""
        begun = control.clock()
        begun_at = ctx.now()
        with control.working():
            res = attempt(user)
        res.started_at = res.started_at or begun_at
        res.duration_s = control.clock() - begun
        if on_result:
            on_result(res)
        return res

    results: list[UserResult] = []
    try:
        with ThreadPoolExecutor(
            max_workers=max(1, ctx.options.concurrency), initializer=_leave_signals_to_main
        ) as pool:
            for res in pool.map(work, users):
                results.append(res)
    finally:
        conns.close()
    results.sort(key=lambda r: r.key)  # report in a stable order, whatever ran first
    return RunResult(
        run_id=run_id,
        users=results,
        duration_s=control.clock() - started,
        dry_run=ctx.options.dry_run,
        stopped=control.reason,
        app_problem=app_problems[0] if app_problems else None,
    )


def _leave_signals_to_main() -> None:
    """Workers block the stop signals, so the kernel delivers them to the main thread.

    A signal that lands on a worker only sets a flag: the main thread, asleep waiting
    for results, would not run the handler until a user finished (observed: a second
    Ctrl-C during a hanging request did nothing for 20 s).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _record_failure(conns: _Connections, run_id: int | None, holder: int, res: UserResult) -> None:
    """Record a user that did not finish normally and release its claim; never raises."""
    try:
        once_more_on_new(lambda conn: _finish(conn, run_id, holder, res), conns.get)
    except psycopg.Error:
        log.warning("could not record the result of user %s", res.key)
