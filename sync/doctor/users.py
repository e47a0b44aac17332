"""`doctor`'s checks of what is stored: each user's sign-in, and whether the schedule runs.

Split from sync/doctor/checkup.py (settings, database, Spotify app, and running it all).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from sync.doctor.check import FAIL, OK, SKIP, WARN, Check
from sync.job import tokens
from sync.names import alias
from sync.spotify.oauth import SCOPES
from sync.statuses import SYNCED_STATUSES, UserStatus
from sync.store.users import REFRESH_TOKEN_LIFETIME_MONTHS as MONTHS
from sync.text import plural

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=2)  # hourly schedule + GitHub's delays
EXPIRY_WARN_DAYS = 30


# -- users --------------------------------------------------------------------------
def login_where(embedded_dir: Path | None) -> str:
    """Where `login` must run to store a user in the database doctor looks at."""
    if embedded_dir is None:
        return "with DATABASE_URL pointing at this database"
    return (f"on this machine with DATABASE_URL unset (doctor looked at the embedded "
            f"database in {embedded_dir}/)")  # fmt: skip


def check_users(
    conn: psycopg.Connection,
    now: datetime,
    show_ids: bool = False,
    embedded_dir: Path | None = None,
) -> list[Check]:
    """Each user's token status, scope and days until Spotify's 6-month limit."""
    if conn.execute("select to_regclass('user_tokens')").fetchone()[0] is None:
        conn.rollback()
        return [Check(SKIP, "users", "no user_tokens table yet (run python -m sync migrate)")]
    rows = conn.execute(
        """select u.id, u.user_id, u.status, u.status_reason, u.scope, u.authorized_at,
                  (select max(r.finished_at) from sync_run_users r
                    where r.user_id = u.id and r.status = 'ok')
             from user_tokens u order by u.id"""
    ).fetchall()
    conn.rollback()
    where = login_where(embedded_dir)
    login_fix = (
        f"that person runs python -m sync login (signed in to Spotify as that account) {where}"
    )
    if not any(status in SYNCED_STATUSES for _, _, status, *_ in rows):
        return [
            Check(
                FAIL,
                "users",
                "none to sync yet",
                f"python -m sync login {where}",
            )
        ]
    return [_check_user(row, now, show_ids, login_fix) for row in rows]


def _check_user(row: tuple, now: datetime, show_ids: bool, login_fix: str) -> Check:
    """One user_tokens row: removed, demo, signed out, missing a scope, or how long it lasts."""
    key, user_id, status, reason, scope, authorized_at, last_ok = row
    name = alias(key, user_id, show_ids)
    if status == UserStatus.REMOVED:
        return Check(OK, name, "removed, history kept; not synced")
    if status == UserStatus.DEMO:
        return Check(OK, name, "made-up history from python -m sync demo; not synced")
    if status == UserStatus.NEEDS_REAUTH:
        return Check(FAIL, name, f"needs to sign in again ({reason or 'no reason'})", login_fix)
    granted = set((scope or "").split())
    missing = [s for s in SCOPES if s not in granted]
    if scope is not None and missing:
        return Check(FAIL, name, f"token lacks the scope {', '.join(missing)}", login_fix)
    return _check_lifetime(name, scope, authorized_at, last_ok, now, login_fix)


def _check_lifetime(
    name: str,
    scope: str | None,
    authorized_at: datetime,
    last_ok: datetime | None,
    now: datetime,
    login_fix: str,
) -> Check:
    """An active user: the last good sync, and the days left of Spotify's 6 months."""
    expires = tokens.refresh_token_expires_at(authorized_at)
    days = (expires - now).days
    synced = f"last ok sync {_ago(now - last_ok)} ago" if last_ok else "never synced"
    scope_text = f"scope {scope}" if scope else "scope not known until the first refresh"
    detail = f"active, {scope_text}, {synced}"
    if expires <= now:
        return Check(
            FAIL,
            name,
            f"{detail}; refresh token passed Spotify's {MONTHS}-month limit on {expires:%Y-%m-%d}",
            login_fix,
        )
    if days < EXPIRY_WARN_DAYS:
        return Check(
            WARN,
            name,
            f"{detail}; refresh token expires in {plural(days, 'day')} ({expires:%Y-%m-%d})",
            login_fix,
        )
    return Check(OK, name, f"{detail}; refresh token good for {plural(days, 'more day')}")


# -- runs ---------------------------------------------------------------------------
SCHEDULE_REASONS = (
    "the hourly schedule is not running. Usually: (1) a fork starts with Actions and "
    "scheduled workflows off: open the Actions tab, enable workflows, then sync > Enable "
    "workflow; (2) GitHub pauses schedules in public repositories after 60 days without "
    "activity: sync > Enable workflow (or gh workflow enable sync.yml); (3) a secret is missing "
    "or wrong, so runs fail before they reach the database: open the latest sync run in the "
    "Actions tab"
)


def check_last_run(conn: psycopg.Connection, now: datetime) -> Check:
    """The newest run's time and result; older than two hours means no schedule."""
    name = "last run"
    if conn.execute("select to_regclass('sync_runs')").fetchone()[0] is None:
        conn.rollback()
        return Check(SKIP, name, "no sync_runs table yet (run python -m sync migrate)")
    row = conn.execute(
        """select id, started_at, finished_at, status, trigger, run_url, users_total,
                  users_synced, users_failed, tracks_added,
                  (to_jsonb(sync_runs) ->> 'alive_until')::timestamptz  -- none before sql/006
             from sync_runs where not dry_run order by started_at desc, id desc limit 1"""
    ).fetchone()
    if row is None:
        conn.rollback()
        return Check(
            WARN,
            name,
            "no run recorded yet",
            "python -m sync run here, or on GitHub: Actions > sync > Run workflow",
        )
    run_id, started, finished, status, trigger, run_url, total, synced, failed, added, alive = row
    failures = conn.execute(
        """select coalesce(error_class, status), count(*) from sync_run_users
            where run_id = %s and status in ('failed', 'needs_reauth') group by 1 order by 1""",
        (run_id,),
    ).fetchall()
    conn.rollback()
    when = finished or started
    age = now - when
    summary = f"{when:%Y-%m-%d %H:%M} UTC ({_ago(age)} ago, {trigger or 'unknown trigger'})"
    if age > STALE_AFTER:
        return Check(FAIL, name, f"{summary}: {status}; nothing newer", SCHEDULE_REASONS)
    where = f"; details: {run_url}" if run_url else ""
    if status == "ok":
        return Check(
            OK,
            name,
            f"{summary}: ok, {synced} of {total} users synced, {plural(added, 'new play')}",
        )
    if status == "failed":
        kinds = ", ".join(f"{n} {kind}" for kind, n in failures) or "see the log"
        return Check(
            WARN,
            name,
            f"{summary}: failed, {failed} of {total} users failed ({kinds})",
            f"python -m sync users shows who{where}",
        )
    dead = alive < now if alive else now - started > timedelta(hours=1)
    if status in ("running", "killed") and (dead or status == "killed"):
        return Check(
            WARN,
            name,
            f"{summary}: never finished: killed (SIGKILL, out of memory, a lost runner, or "
            "timeout-minutes); the next run records it as killed",
            f"look at that run in the Actions tab{where}",
        )
    if status == "running":
        return Check(OK, name, f"{summary}: running now")
    return Check(WARN, name, f"{summary}: {status}", f"run it again{where}")


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return plural(seconds // 86400, "day")
