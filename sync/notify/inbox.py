"""After each run: open, update and close the owner's issues so they match the problems.

The database (owner_notices) says which issue stands for which problem; GitHub is told
afterwards. Any GitHub failure ends the inbox work for this run with one warning line
and is retried by the next run; it never fails the sync.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from sync.config import Settings
from sync.job.results import RunResult
from sync.notify.github import GitHubError, GitHubIssues
from sync.notify.problems import (
    GAP_RUNS,
    Desired,
    Key,
    Place,
    Problem,
    UserFacts,
    desired,
    marker,
)
from sync.store import notices

log = logging.getLogger(__name__)

RESOLVED = {
    Problem.SIGN_IN: "Signed in again: syncing goes on. Closed by the sync.",
    Problem.REFUSED: "Spotify serves this user again: syncing goes on. Closed by the sync.",
    Problem.INVALID_CLIENT: "Spotify accepts the app's credentials again. Closed by the sync.",
    Problem.PREMIUM_LAPSED: "Spotify serves the app again. Closed by the sync.",
    Problem.GAPS: "Fewer runs see a possible gap now. Closed by the sync.",
    Problem.HELD: "The user is synced again. Closed by the sync.",
    Problem.SCHEDULE: "New activity: the schedule keeps running. Closed by the sync.",
}
GONE = "The user was removed from the sync. Closed by the sync."


@dataclass
class InboxReport:
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    calls: int = 0
    warning: str | None = None


def _hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()


def reconcile(conn: psycopg.Connection, api: GitHubIssues, want: Desired,
              user_keys: set[str]) -> InboxReport:  # fmt: skip
    """Make the open issues match `want`; `user_keys` are the subjects of stored users."""
    report = InboxReport()
    stored = notices.rows(conn)
    try:
        for key, notice in want.present.items():
            digest = _hash(notice.title, notice.body)
            row = stored.get(key)
            if row is not None and row.issue_number is not None:
                if row.body_hash != digest and notices.claim_issue(conn, key, row.issue_number):
                    _call(conn, key, api.update, row.issue_number, notice.title, notice.body)
                    notices.record_update(conn, key, row.issue_number, digest)
                    report.updated.append(row.issue_number)
                continue
            attempt = notices.claim_new(conn, key)
            if attempt is None:
                continue  # another run is opening it right now
            number = _call(conn, key, _open, api, key, notice.title, notice.body, attempt)
            if notices.record_issue(conn, key, number, digest):
                report.opened.append(number)
        for key, row in stored.items():
            if key in want.present or key in want.unknown:
                continue
            if row.issue_number is None:
                if not row.claimed:
                    notices.forget(conn, key, None)
                continue
            if notices.claim_issue(conn, key, row.issue_number):
                note = RESOLVED[Problem(key[0])] if key[1] in user_keys or key[1] == "app" else GONE
                _call(conn, key, api.close, row.issue_number, note)
                notices.forget(conn, key, row.issue_number)
                report.closed.append(row.issue_number)
    except GitHubError as exc:
        report.warning = (
            f"the owner's issues were not brought up to date ({exc}); the next run tries again"
        )
    report.calls = api.calls
    return report


def _call(conn: psycopg.Connection, key: Key, call: Callable, *args):
    """A GitHub call made under this run's claim; a failure gives the claim back."""
    try:
        return call(*args)
    except GitHubError:
        notices.release(conn, key)
        raise


def _open(api: GitHubIssues, key: Key, title: str, body: str, attempt: int) -> int:
    """Create the issue; after an interrupted earlier attempt, first look for its issue."""
    if attempt > 1:
        for issue in api.open_issues():
            if marker(key) in issue.body:
                api.update(issue.number, title, body)
                return issue.number
    return api.create(title, body)


def last_commit_at(cwd: str | None = None) -> datetime | None:
    """When the checked-out commit was made (GitHub counts commits as activity)."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        return datetime.fromtimestamp(int(out), UTC)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def notify_owner(
    conn: psycopg.Connection,
    settings: Settings,
    result: RunResult | None,
    now: datetime,
    *,
    api: GitHubIssues | None = None,
    last_activity: Callable[[], datetime | None] = last_commit_at,
) -> InboxReport | None:
    """Bring the owner's issues up to date after a run; None when the inbox is off."""
    if not settings.notify or not settings.github_token or not settings.repository:
        return None
    api = api or GitHubIssues(settings.github_api_url, settings.repository, settings.github_token)
    place = Place(settings.server_url, settings.repository,
                  show_ids=settings.show_user_ids and settings.repo_private is True)  # fmt: skip
    days = None
    if settings.repo_private is False:
        stamp = last_activity()
        days = None if stamp is None else (now - stamp).total_seconds() / 86400
    try:
        users = [UserFacts(*row) for row in notices.user_facts(conn, GAP_RUNS)]
        want = desired(users, result, place, now, lambda key: _link(settings, key, now), days)
        return reconcile(conn, api, want, {f"user-{u.key}" for u in users})
    except psycopg.Error as exc:
        report = InboxReport(calls=api.calls)
        report.warning = (f"the owner's issues were not brought up to date (database: "
                          f"{type(exc).__name__}); the next run tries again")  # fmt: skip
        return report


def _link(settings: Settings, key: int, now: datetime) -> tuple[str, datetime]:
    from sync.signin.link import sign_in_link

    return sign_in_link(settings, key, now)
