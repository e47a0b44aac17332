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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.errors import LockNotAvailable

from sync.control import RunControl
from sync.db.reconnect import connection_lost, once_more_on_new
from sync.job import outcomes, tokens
from sync.job.fetch import fetch_window
from sync.job.results import RunResult, UserResult
from sync.job.transform import parse_items
from sync.redact import Redactor
from sync.spotify.client import SpotifyClient, Unauthorized
from sync.statuses import AppProblem, Outcome, UserStatus, WarningCode
from sync.store import outcome
from sync.store import users as user_store
from sync.store.runs import Candidate
from sync.store.users import User

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # sync.commands.run handles them
LEASE = user_store.LEASE  # one home: store/users.py, beside the claim
LOCKED_WARNING_AFTER = timedelta(hours=3)  # a user held by another run this long: a warning
LOCK_TIMEOUT = "15s"  # longest wait for a table or row lock (an import, maintenance)
STATEMENT_TIMEOUT = "5min"  # longest any one statement of the job may run


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
    """Sync one user and write its outcome: claim, access token, fetch, keep what is new,
    save. Raises on failure; the caller records those."""
    res = UserResult(key=user.key, user_id=user.user_id, started_at=ctx.now())
    claim = _claim(conn, ctx, user, holder, run_id, res)
    if claim is None:
        return res
    who = ctx.name(user.key, user.user_id)
    token, state = _access_token(conn, ctx, claim.user, who, res)
    items, possible_gap = _fetch(conn, ctx, claim, token, state, who)
    plays = _keep_new(res, claim, items, possible_gap)
    _save(conn, ctx, holder, run_id, res, plays)
    return res


def _claim(
    conn: psycopg.Connection,
    ctx: Context,
    user: Candidate,
    holder: int,
    run_id: int | None,
    res: UserResult,
) -> user_store.Claim | None:
    """Claim the user for this run (one statement); None, the outcome recorded, when the
    user is not this run's to sync."""
    if user.status == UserStatus.NEEDS_REAUTH:
        res.status = Outcome.NEEDS_REAUTH
        res.warn(WarningCode.NEEDS_SIGN_IN, "needs to sign in again (python -m sync login); "
                 "not synced")  # fmt: skip
        _finish(conn, run_id, holder, res)
        return None
    claim = user_store.claim(conn, user.key, holder, LEASE)
    if claim.user is None:
        _not_claimed(res, claim, user, ctx.now())
        _finish(conn, run_id, holder, res)
        return None
    return claim


def _access_token(
    conn: psycopg.Connection, ctx: Context, state: User, who: str, res: UserResult
) -> tuple[str, User]:
    """The stored access token while it stays valid, else a refreshed one; warns when the
    refresh token nears Spotify's limit."""
    ctx.redactor.protect(state.refresh_token)
    ctx.redactor.protect(state.access_token)
    now = ctx.now()
    warning = tokens.expiry_warning(state, now)
    if warning:
        res.warn(WarningCode.TOKEN_EXPIRING, warning)
    token = tokens.cached_access_token(state, now)
    if token is None:
        token, state = _refresh(conn, ctx, state, now, who)
    return token, state


def _refresh(
    conn: psycopg.Connection, ctx: Context, state: User, now: datetime, who: str
) -> tuple[str, User]:
    with ctx.control.critical():  # a rotated token is saved before any hard exit
        return tokens.refresh_access_token(conn, ctx.client, state, now, ctx.redactor.protect, who)


def _fetch(
    conn: psycopg.Connection,
    ctx: Context,
    claim: user_store.Claim,
    token: str,
    state: User,
    who: str,
) -> tuple[list, bool]:
    """The plays since the newest stored one, and whether there may be a gap before them.

    A 401 gets exactly one refresh and one retry, with the token as stored now (a refresh
    before may have rotated it)."""

    def window(token: str) -> tuple[list, bool]:
        return fetch_window(ctx.client, token, claim.newest_played_at, ctx.options.max_tracks, who)

    try:
        return window(token)
    except Unauthorized:
        token, _ = _refresh(conn, ctx, state, ctx.now(), who)
        return window(token)


def _keep_new(res: UserResult, claim: user_store.Claim, items: list, possible_gap: bool) -> list:
    """The plays not stored yet; counts them in the result and warns of a possible gap."""
    plays, skipped = parse_items(items, claim.recent_played_at)
    res.fetched = len(items)
    res.skipped_items = skipped
    res.possible_gap = possible_gap
    if possible_gap:
        res.warn(
            WarningCode.POSSIBLE_GAP,
            "possible gap: all 50 plays in Spotify's window are new, so older plays since the "
            "last sync may be lost (sync more often, or import your Spotify data export)",
        )
    return plays


def _save(
    conn: psycopg.Connection,
    ctx: Context,
    holder: int,
    run_id: int | None,
    res: UserResult,
    plays: list,
) -> None:
    """Store the plays and the outcome and give the user back: one statement. A dry run
    counts what would be new inside a rolled-back transaction."""
    if ctx.options.dry_run:
        with conn.transaction() as tx:
            res.new_tracks = len(outcome.save(conn, res.key, holder, None, _row(res), plays))
            raise psycopg.Rollback(tx)
        _finish(conn, run_id, holder, res)
    else:
        new = outcome.save(conn, res.key, holder, run_id, _row(res), plays, LEASE)
        res.new_tracks = len(new)


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
    started = ctx.control.clock()
    holder = run_id if run_id is not None else -secrets.randbelow(2**62) - 1
    run = _Run(ctx, _Connections(url, connect), holder, run_id)
    results: list[UserResult] = []
    try:
        with ThreadPoolExecutor(
            max_workers=max(1, ctx.options.concurrency), initializer=_leave_signals_to_main
        ) as pool:
            for res in pool.map(lambda user: _work(run, user, on_result), users):
                results.append(res)
    finally:
        run.conns.close()
    results.sort(key=lambda r: r.key)  # report in a stable order, whatever ran first
    return RunResult(
        run_id=run_id,
        users=results,
        duration_s=ctx.control.clock() - started,
        dry_run=ctx.options.dry_run,
        stopped=ctx.control.reason,
        app_problem=run.app_problems[0] if run.app_problems else None,
    )


@dataclass
class _Run:
    """What the users of one run share."""

    ctx: Context
    conns: _Connections
    holder: int  # the claim holder: the run's id, or a random negative one for a dry run
    run_id: int | None
    app_problems: list[AppProblem] = field(default_factory=list)  # met so far, first first


def _work(run: _Run, user: Candidate, on_result: Callable[[UserResult], None] | None) -> UserResult:
    """Attempt one user, then log the result whatever it was (skips too)."""
    control = run.ctx.control
    begun = control.clock()
    begun_at = run.ctx.now()
    with control.working():
        res = _attempt(run, user)
    res.started_at = res.started_at or begun_at
    res.duration_s = control.clock() - begun
    if on_result:
        on_result(res)
    return res


def _attempt(run: _Run, user: Candidate) -> UserResult:
    """Sync one user, once more on a new connection if the database went away; an error
    becomes the user's outcome (sync.job.outcomes), redacted and recorded."""
    res = UserResult(user.key, user.user_id, started_at=run.ctx.now())
    tries = _Tries(run, user)
    try:
        return once_more_on_new(tries.sync, tries.connection, lost=tries.lost,
                                on_lost=tries.say_lost)  # fmt: skip
    except Exception as exc:  # anything fails this user only, never the others
        verdict = outcomes.verdict(exc, user, lock_timeout=LOCK_TIMEOUT)
        error = run.ctx.redactor.redact(verdict.error) if verdict.error else None
        _apply(run, res, replace(verdict, error=error))  # its warning too
    _record_failure(run.conns, run.run_id, run.holder, res)
    return res


class _Tries:
    """One user's two tries. Tokens Spotify rotated that the first could not save (the
    connection was lost right after the refresh) are saved first on the second's."""

    def __init__(self, run: _Run, user: Candidate):
        self.run = run
        self.user = user
        self.pending: tokens.PendingTokens | None = None

    def connection(self) -> psycopg.Connection:
        self.run.ctx.control.check()  # a stopped run starts no user, and no second try
        return self.run.conns.get()

    def sync(self, conn: psycopg.Connection) -> UserResult:
        if self.pending is not None:  # Spotify's rotated token first, before anything
            with self.run.ctx.control.critical():
                tokens.save_pending(conn, self.pending)
            self.pending = None
        return sync_user(conn, self.run.ctx, self.user, self.run.holder, self.run.run_id)

    def lost(self, conn: psycopg.Connection | None, exc: Exception) -> bool:
        if isinstance(exc, tokens.TokensNotSaved):
            self.pending = exc.pending
            return True
        # a lock wait that ran out leaves the connection usable: the database is busy, not gone
        return not isinstance(exc, LockNotAvailable) and connection_lost(conn, exc)

    def say_lost(self, exc: Exception) -> None:
        who = self.run.ctx.name(self.user.key, self.user.user_id)
        if isinstance(exc, tokens.TokensNotSaved):
            log.warning("%s: database connection lost before the refreshed token was saved; "
                        "saving it on a new one", who)  # fmt: skip
        else:
            log.warning("%s: database connection lost; retrying with a new one", who)


def _apply(run: _Run, res: UserResult, verdict: outcomes.Verdict) -> None:
    """Give the result the verdict's outcome. An app-wide refusal also stops the run (users
    not started are skipped with the reason); reports say the fix once, for the run."""
    if verdict.stops_run:
        problem = verdict.app_problem
        run.app_problems.append(problem)  # before stop(): whoever sees the stop sees the problem
        run.ctx.control.stop(outcomes.APP_STOP_REASONS[problem])
    res.status, res.error_class, res.error = verdict.status, verdict.error_class, verdict.error
    res.app_problem = verdict.app_problem
    res.newly_needs_reauth = verdict.newly_needs_reauth
    if verdict.warning:
        res.warn(verdict.warning, verdict.error)


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
