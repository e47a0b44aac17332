"""The owner's inbox: one GitHub issue per problem that needs the owner, opened, updated
and closed by the runs, against a stand-in GitHub server and a real Postgres."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from sync.config import load_settings
from sync.job.results import RunResult, UserResult
from sync.notify import inbox
from sync.notify.github import GitHubIssues
from sync.notify.problems import Problem
from sync.statuses import AppProblem, Outcome
from sync.store import notices
from tests.conftest import add_user
from tests.github_standin import GitHubStandin
from tests.spotify_fakes import window

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LINK = "https://accounts.example/authorize?state=v1.test"


@pytest.fixture
def github():
    with GitHubStandin() as standin:
        yield standin


@pytest.fixture
def fixed_link(monkeypatch):
    monkeypatch.setattr(inbox, "_link", lambda settings, key, now: (LINK, START + timedelta(days=400)))


def _settings(github: GitHubStandin, db_url: str, **extra: str):
    env = {"DATABASE_URL": db_url, "SPOTIFY_CLIENT_ID": "client-id-123456",
           "SPOTIFY_CLIENT_SECRET": "client-secret-123456", **github.env(), **extra}  # fmt: skip
    return load_settings(env)


def _attempt(conn, key: int, status: str, at: datetime, gap: bool = False) -> None:
    """Record one run's outcome for a user, as a run's final write leaves it."""
    with conn.transaction():
        run_id = conn.execute(
            "insert into sync_runs (started_at, finished_at, status) values (%s, %s, 'ok') "
            "returning id",
            (at, at),
        ).fetchone()[0]
        conn.execute(
            "insert into sync_run_users (run_id, user_id, status, started_at, finished_at, "
            "possible_gap, error_class) values (%s, %s, %s, %s, %s, %s, %s)",
            (run_id, key, status, at, at, gap, "Forbidden" if status == "refused" else None),
        )


def _result(key: int, status: Outcome, app: AppProblem | None = None) -> RunResult:
    res = UserResult(key, "alice", status=status)
    return RunResult(run_id=None, users=[res], duration_s=1.0, dry_run=False, app_problem=app)


def _notify(conn, settings, result, now, **kw):
    api = GitHubIssues(settings.github_api_url, settings.repository, settings.github_token)
    return inbox.notify_owner(conn, settings, result, now, api=api,
                              last_activity=kw.get("last_activity", lambda: now))  # fmt: skip


def test_a_year_of_one_user_opens_updates_and_closes_one_issue_per_problem(
    github, db_url, conn, fixed_link
):
    """Expiry, a sign-in again, a refusal, gaps: one run a day for a year."""
    settings = _settings(github, db_url)
    key = add_user(conn, "alice", authorized_at=START)
    calls_per_run: list[int] = []
    events: list[tuple[int, str, int]] = []  # (day, what, issue)
    for day in range(366):
        now = START + timedelta(days=day, hours=1)
        if day == 185:  # signs in again from the issue's link
            conn.execute("update user_tokens set authorized_at = %s, status = 'active' "
                         "where id = %s", (now, key))  # fmt: skip
        if day == 183:  # Spotify refuses the dead token: the run marks the user
            conn.execute("update user_tokens set status = 'needs_reauth' where id = %s", (key,))
        status = Outcome.OK
        if day in (220, 221):
            status = Outcome.FAILED if day == 220 else Outcome.REFUSED
        if conn.execute("select status from user_tokens where id = %s", (key,)).fetchone()[0] \
                == "needs_reauth":  # fmt: skip
            status = Outcome.NEEDS_REAUTH
        gap = day in (260, 270, 280)
        _attempt(conn, key, str(status), now, gap=gap and status == Outcome.OK)
        before = len(github.state.calls)
        report = _notify(conn, settings, _result(key, status), now)
        calls_per_run.append(len(github.state.calls) - before)
        assert report.warning is None
        events += [(day, "opened", n) for n in report.opened]
        events += [(day, "updated", n) for n in report.updated]
        events += [(day, "closed", n) for n in report.closed]
    issues = github.state.issues
    titles = {n: i.title for n, i in issues.items()}
    assert [(d, w) for d, w, _ in events] == [
        (167, "opened"),  # 14 days before the 6 months end (2026-07-05)
        (181, "updated"),  # the day it ends: "needs to sign in again"
        (185, "closed"),  # signed in again
        (221, "opened"),  # refused twice in a row
        (222, "closed"),  # synced again
        (280, "opened"),  # possible gaps in 3 of the last 24 synced runs
        (284, "closed"),  # the first of them left the 24-run window
        (355, "opened"),  # 14 days before the second sign-in's end
    ]
    by_problem = {i.body.rsplit("notice: ", 1)[1].split(" ")[0]: i for i in issues.values()}
    assert sorted(by_problem) == sorted(f"{p}/user-{key}" for p in ("sign_in", "refused", "gaps"))
    assert len(issues) == 4 and all(i.labels == ["sync"] for i in issues.values())
    first, refused, gaps, second = (issues[n] for n in sorted(issues))
    assert first.state == refused.state == gaps.state == "closed" and second.state == "open"
    assert first.comments == [inbox.RESOLVED[Problem.SIGN_IN]]
    assert first.title == "user-1 needs to sign in with Spotify again"
    assert second.title == "user-1's Spotify sign-in ends on 2027-01-09"
    assert LINK in second.body and "Run workflow" in second.body
    assert "`*/30 * * * *`" in gaps.body and "python -m sync import" in gaps.body
    assert all("alice" not in i.title + i.body for i in issues.values())
    assert notices.rows(conn).keys() == {("sign_in", f"user-{key}")}
    quiet = sum(1 for c in calls_per_run if c == 0)
    assert max(calls_per_run) == 2 and sum(calls_per_run) == 11 and quiet == 358
    print(f"\nsimulated year: {len(events)} issue events, {sum(calls_per_run)} API calls in "
          f"366 runs, {quiet} runs with none, at most {max(calls_per_run)} in one run")
