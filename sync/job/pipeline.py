"""The sync job: per user token -> fetch -> store, in a bounded pool, isolated per user."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from sync import analytics
from sync.job import tokens
from sync.job.transform import SkipItem, parse_items, parse_played_at
from sync.redact import Redactor
from sync.spotify.client import (
    RECENTLY_PLAYED_LIMIT,
    InvalidClient,
    SpotifyClient,
    Unauthorized,
)
from sync.store import plays as plays_store
from sync.store import runs as runs_store
from sync.store import users as user_store
from sync.store.users import User

log = logging.getLogger(__name__)


@dataclass
class Options:
    dry_run: bool = False
    max_tracks: int = 1000
    concurrency: int = 4
    time_budget: float | None = None  # seconds; stop starting new users after this


@dataclass
class UserResult:
    key: int
    user_id: str
    status: str = "ok"  # ok | needs_reauth | failed | skipped
    new_tracks: int = 0
    fetched: int = 0
    skipped_items: int = 0
    possible_gap: bool = False
    newly_needs_reauth: bool = False
    error_class: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    duration_s: float = 0.0


@dataclass
class RunResult:
    run_id: int | None
    users: list[UserResult]
    duration_s: float
    dry_run: bool

    @property
    def tracks_added(self) -> int:
        return sum(u.new_tracks for u in self.users)

    def count(self, status: str) -> int:
        return sum(1 for u in self.users if u.status == status)

    @property
    def exit_code(self) -> int:
        """1 when a user failed or newly needs re-auth (so GitHub e-mails the owner once)."""
        if any(u.status == "failed" or u.newly_needs_reauth for u in self.users):
            return 1
        return 0

    def totals(self) -> dict[str, int]:
        return {
            "users_total": len(self.users),
            "users_synced": self.count("ok"),
            "users_failed": self.count("failed"),
            "users_needs_reauth": self.count("needs_reauth"),
            "users_skipped": self.count("skipped"),
            "tracks_added": self.tracks_added,
        }


@dataclass
class Context:
    client: SpotifyClient
    redactor: Redactor
    options: Options
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def fetch_window(
    client: SpotifyClient, access_token: str, newest: datetime | None, max_tracks: int
) -> tuple[list, bool]:
    """Read the recently-played window; return raw items and whether a gap is possible.

    The whole first page is always read (late plays can be older than the newest stored
    one); `next` is followed only while a page holds nothing but plays newer than `newest`:
    items come newest first, so once a page reaches the stored plays, older pages hold
    nothing new (and asking would cost every user an extra request every run).
    """
    items: list = []
    possible_gap = False
    for index, page in enumerate(client.recently_played_pages(access_token)):
        page_items = page.get("items") or []
        items.extend(page_items)
        times = []
        for item in page_items:
            try:
                times.append(parse_played_at(item.get("played_at")))
            except (SkipItem, AttributeError):
                continue
        newer = [t for t in times if newest is None or t > newest]
        reached_stored = len(newer) < len(times)
        if index == 0 and newest is not None and len(page_items) >= RECENTLY_PLAYED_LIMIT:
            possible_gap = bool(times) and not reached_stored
        if not page_items or not newer or reached_stored or len(items) >= max_tracks:
            break
    return items[:max_tracks], possible_gap


def fair_order(users: Sequence[User], last_attempt: dict[int, datetime]) -> list[User]:
    """Never-attempted users first, then the longest-waiting: a time budget that runs out
    every hour must not starve the same users every hour."""
    return sorted(users, key=lambda u: (u.key in last_attempt, last_attempt.get(u.key), u.key))


def sync_user(conn: psycopg.Connection, ctx: Context, user: User) -> UserResult:
    """Sync one user. Raises on failure; the caller turns exceptions into results."""
    result = UserResult(key=user.key, user_id=user.user_id, started_at=ctx.now())
    ctx.redactor.protect(user.refresh_token)
    ctx.redactor.protect(user.access_token)
    if user.status == "needs_reauth":
        result.status = "needs_reauth"
        result.warnings.append("needs to sign in again (python -m sync login); not synced")
        return result
    now = ctx.now()
    warning = tokens.expiry_warning(user, now)
    if warning:
        result.warnings.append(warning)

    token = tokens.cached_access_token(user, now)
    if token is None:
        token = tokens.refresh_access_token(conn, ctx.client, user, now, ctx.redactor.protect)
    newest = plays_store.newest_played_at(conn, user.key)
    conn.rollback()
    try:
        items, possible_gap = fetch_window(ctx.client, token, newest, ctx.options.max_tracks)
    except Unauthorized:
        # Exactly one refresh and one retry. Reload the row first: a refresh above may have
        # rotated the refresh token, and the old one is no longer valid.
        user = user_store.load_user(conn, user.key)
        conn.rollback()
        token = tokens.refresh_access_token(conn, ctx.client, user, ctx.now(), ctx.redactor.protect)
        items, possible_gap = fetch_window(ctx.client, token, newest, ctx.options.max_tracks)
    plays, skipped = parse_items(items)
    result.fetched = len(items)
    result.skipped_items = skipped
    result.possible_gap = possible_gap
    if possible_gap:
        result.warnings.append(
            "possible gap: all 50 plays in Spotify's window are new, so older plays since the "
            "last sync may be lost (sync more often, or import your Spotify data export)"
        )
    with conn.transaction() as tx:
        new_times = plays_store.insert_plays(conn, user.key, plays)
        analytics.refresh_days(conn, user.key, new_times)
        result.new_tracks = len(new_times)
        if ctx.options.dry_run:
            raise psycopg.Rollback(tx)  # dry run: count what would be new, write nothing
    return result


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, tokens.NeedsReauth):
        return "NeedsReauth", f"Spotify refused the refresh token ({exc}); sign in again"
    if isinstance(exc, psycopg.Error):
        first = (str(exc).strip().splitlines() or [""])[0]
        return type(exc).__name__, f"database error: {first}"[:300]
    return type(exc).__name__, (str(exc) or type(exc).__name__)[:300]


class _Connections:
    """One database connection per worker thread, closed at the end of the run."""

    def __init__(self, url: str, connect: Callable[[str], psycopg.Connection]):
        self._url = url
        self._connect = connect
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect(self._url)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()


def run_sync(
    url: str,
    connect: Callable[[str], psycopg.Connection],
    users: list[User],
    ctx: Context,
    *,
    run_id: int | None,
    clock: Callable[[], float] = time.monotonic,
    on_result: Callable[[UserResult], None] | None = None,
) -> RunResult:
    """Sync every user in a bounded pool; one user's failure never stops the others."""
    started = clock()
    budget = ctx.options.time_budget
    conns = _Connections(url, connect)
    fatal: list[BaseException] = []

    def attempt(user: User) -> UserResult:
        if fatal:
            return UserResult(user.key, user.user_id, status="skipped", error="run stopped early")
        if budget is not None and clock() - started >= budget:
            return UserResult(user.key, user.user_id, status="skipped", error="time budget reached")
        conn = conns.get()
        if not user_store.try_lock_user(conn, user.key):
            res = UserResult(user.key, user.user_id, status="skipped")
            res.error = "another run is syncing this user"
            return res
        try:
            res = sync_user(conn, ctx, user)
        except InvalidClient as exc:
            # The app's credentials are wrong for everyone: stop starting new users.
            fatal.append(exc)
            conn.rollback()
            res = UserResult(user.key, user.user_id, status="failed")
            res.error_class, res.error = (
                "InvalidClient",
                (f"{exc}: check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"),
            )
        except tokens.NeedsReauth as exc:
            conn.rollback()
            res = UserResult(user.key, user.user_id, status="needs_reauth")
            res.newly_needs_reauth = True
            res.error_class, res.error = _describe(exc)
        except Exception as exc:  # anything else fails this user only, never the others
            if not conn.closed:
                conn.rollback()
            res = UserResult(user.key, user.user_id, status="failed")
            res.error_class, res.error = _describe(exc)
        finally:
            if not conn.closed:
                try:
                    user_store.unlock_user(conn, user.key)
                except psycopg.Error:
                    conn.close()
        return res

    def work(user: User) -> UserResult:
        """Attempt one user, then log and record the result whatever it was (skips too)."""
        begun = clock()
        begun_at = ctx.now()
        res = attempt(user)
        res.started_at = res.started_at or begun_at
        res.duration_s = clock() - begun
        res.error = ctx.redactor.redact(res.error) if res.error else None
        if run_id is not None:
            _record(conns.get(), run_id, res)
        if on_result:
            on_result(res)
        return res

    try:
        with ThreadPoolExecutor(max_workers=max(1, ctx.options.concurrency)) as pool:
            results = list(pool.map(work, users))
    finally:
        conns.close()
    results.sort(key=lambda r: r.key)  # report in a stable order, whatever ran first
    return RunResult(
        run_id=run_id, users=results, duration_s=clock() - started, dry_run=ctx.options.dry_run
    )


def _record(conn: psycopg.Connection, run_id: int, res: UserResult) -> None:
    try:
        with conn.transaction():
            runs_store.record_user_result(
                conn,
                run_id,
                res.key,
                status=res.status,
                started_at=res.started_at,
                fetched=res.fetched,
                new_tracks=res.new_tracks,
                skipped_items=res.skipped_items,
                possible_gap=res.possible_gap,
                error_class=res.error_class,
                error=res.error,
                warnings=res.warnings,
            )
    except psycopg.Error as exc:
        log.warning("could not record the result of user %s: %s", res.key, type(exc).__name__)
