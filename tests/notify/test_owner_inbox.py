"""The owner's inbox: one GitHub issue per problem that needs the owner, opened, updated
and closed by the runs, against a stand-in GitHub server and a real Postgres."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.config import load_settings
from sync.job.results import RunResult, UserResult
from sync.notify import inbox
from sync.notify.github import GitHubIssues
from sync.notify.problems import Problem
from sync.statuses import AppProblem, Outcome
from sync.store import notices
from tests.conftest import add_user
from tests.support.github_standin import GitHubStandin
from tests.support.spotify_fakes import window

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LINK = "https://accounts.example/authorize?state=v1.test"


@pytest.fixture
def github():
    with GitHubStandin() as standin:
        yield standin


@pytest.fixture
def fixed_link(monkeypatch):
    monkeypatch.setattr(
        inbox, "_link", lambda settings, key, now: (LINK, START + timedelta(days=400))
    )


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
    print(
        f"\nsimulated year: {len(events)} issue events, {sum(calls_per_run)} API calls in "
        f"366 runs, {quiet} runs with none, at most {max(calls_per_run)} in one run"
    )


def test_overlapping_runs_open_one_issue_for_one_problem(github, db_url, conn, fixed_link):
    settings = _settings(github, db_url)
    key = add_user(conn, "alice", status="needs_reauth")
    now = START
    # Run A has claimed the problem and is calling GitHub right now ...
    assert notices.claim_new(conn, (Problem.SIGN_IN, f"user-{key}")) == 1
    report_b = _notify(conn, settings, None, now)  # ... when run B gets there
    assert report_b.opened == [] and github.state.issues == {}
    # Many runs at once, each on its own connection: still one issue.
    notices.release(conn, (Problem.SIGN_IN, f"user-{key}"))
    conn.execute("delete from owner_notices")
    import psycopg

    barrier = threading.Barrier(4)
    reports = []

    def one_run() -> None:
        with psycopg.connect(db_url, autocommit=True) as own:
            barrier.wait(timeout=10)
            reports.append(_notify(own, settings, None, now))

    threads = [threading.Thread(target=one_run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(github.state.open_issues()) == 1
    assert sum(len(r.opened) for r in reports) == 1


def test_a_github_outage_is_retried_by_the_next_run_without_a_duplicate(
    github, db_url, conn, fixed_link
):
    settings = _settings(github, db_url)
    key = add_user(conn, "alice", status="needs_reauth")
    github.state.fail = [503]
    report = _notify(conn, settings, None, START)
    assert report.opened == [] and "503" in report.warning and github.state.issues == {}
    report = _notify(conn, settings, None, START + timedelta(hours=1))
    assert report.warning is None and len(report.opened) == 1
    # A run killed between creating the issue and recording its number: the next run
    # finds the issue by its marker instead of opening a second one.
    conn.execute("delete from owner_notices")
    conn.execute(
        "insert into owner_notices (problem, subject, attempts, claimed_until) "
        "values ('sign_in', %s, 1, now() - interval '1 hour')",
        (f"user-{key}",),
    )
    report = _notify(conn, settings, None, START + timedelta(hours=2))
    assert report.opened == [1] and len(github.state.issues) == 1
    assert notices.rows(conn)[("sign_in", f"user-{key}")].issue_number == 1


def test_a_removed_user_s_issue_is_closed_and_says_so(github, db_url, conn, fixed_link):
    settings = _settings(github, db_url)
    key = add_user(conn, "alice", status="needs_reauth")
    _notify(conn, settings, None, START)
    conn.execute("update user_tokens set status = 'removed' where id = %s", (key,))
    report = _notify(conn, settings, None, START + timedelta(hours=1))
    assert report.closed == [1] and github.state.issues[1].comments == [inbox.GONE]


def test_app_refusals_open_one_issue_until_a_user_syncs(github, db_url, conn, fixed_link):
    settings = _settings(github, db_url)
    key = add_user(conn, "alice")
    lapsed = _result(key, Outcome.FAILED, AppProblem.PREMIUM_LAPSED)
    assert _notify(conn, settings, lapsed, START).opened == [1]
    assert _notify(conn, settings, lapsed, START + timedelta(hours=1)).opened == []
    issue = github.state.issues[1]
    assert "Renew Premium on the app owner's account" in issue.body
    assert "User Management" not in issue.body
    # A run that reached nobody (skipped) says nothing about the app: the issue stays.
    assert _notify(conn, settings, _result(key, Outcome.SKIPPED), START).closed == []
    assert _notify(conn, settings, _result(key, Outcome.OK), START).closed == [1]


def test_the_schedule_warning_starts_on_day_45_in_public_repositories(
    github, db_url, conn, fixed_link
):
    commit = START
    settings = _settings(github, db_url)
    day44 = _notify(conn, settings, None, commit + timedelta(days=44),
                    last_activity=lambda: commit)  # fmt: skip
    assert day44.opened == []
    day45 = _notify(conn, settings, None, commit + timedelta(days=45, hours=1),
                    last_activity=lambda: commit)  # fmt: skip
    assert day45.opened == [1]
    issue = github.state.issues[1]
    assert issue.title == "Scheduled syncs stop around 2026-03-06"
    assert "Continue running workflow" in issue.body and "Enable workflow" in issue.body
    private = _settings(github, db_url, REPO_PRIVATE="true")
    assert _notify(conn, private, None, commit + timedelta(days=50),
                   last_activity=lambda: commit).opened == []  # fmt: skip
    pushed = _notify(conn, settings, None, commit + timedelta(days=46),
                     last_activity=lambda: commit + timedelta(days=46))  # fmt: skip
    assert pushed.closed == [1]


@pytest.mark.parametrize("env", [{"SYNC_NOTIFY": "off"}, {"GITHUB_TOKEN": ""}])
def test_off_or_without_a_token_nothing_is_sent(github, db_url, conn, env, fixed_link):
    add_user(conn, "alice", status="needs_reauth")
    settings = _settings(github, db_url, **env)
    assert inbox.notify_owner(conn, settings, None, START) is None
    assert github.state.calls == []


FORBIDDEN_PREMIUM = (
    403,
    {"error": {"status": 403,
               "message": "Active premium subscription required for the owner of the app"}},
    {},
)  # fmt: skip


def test_the_sync_opens_the_issue_and_a_github_403_never_fails_it(
    run, spotify, conn, github, fixed_link
):
    spotify.rsps.add_passthru(github.url)
    summary = run.actions()
    run.env(**github.env())
    add_user(conn, "alice", "refresh-alice-0001", status="needs_reauth")
    add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("bob", "refresh-bob-0001", window(START, 2))
    result = run("run")
    assert result.code == 0, result.err
    assert "Issues for the owner: opened #1." in result.err
    assert "Issues for the owner: opened #1." in Path(summary).read_text()
    assert github.state.issues[1].title == "user-1 needs to sign in with Spotify again"
    github.state.fail = [403] * 5
    conn.execute("delete from owner_notices")
    result = run("run")
    assert result.code == 0
    warnings = [line for line in result.err.splitlines() if "owner's issues" in line]
    assert len(warnings) == 1 and "403" in warnings[0] and "issues: write" in warnings[0]


def test_a_lapsed_premium_stops_the_run_with_one_line_and_one_issue(
    run, spotify, conn, github, fixed_link
):
    spotify.rsps.add_passthru(github.url)
    summary = run.actions()
    run.env(**github.env())
    for name in ("alice", "bob", "carol", "dave", "erin"):
        add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001", window(START, 2))
        spotify.data_queue[name] = [FORBIDDEN_PREMIUM]
    result = run("run", "--concurrency", "1", "--json")
    assert result.code == 1
    statuses = [u["status"] for u in result.report["users"]]
    assert statuses == ["failed", "skipped", "skipped", "skipped", "skipped"]
    text = Path(summary).read_text()
    assert text.count("Renew Premium") == 1 or text.count("renew Premium") == 1
    assert "User Management" not in text + result.err
    assert result.err.count("::error") == 1
    assert "refused" not in statuses and "needs_reauth" not in statuses
    assert [i.title for i in github.state.issues.values()] == [
        "Spotify stopped the app: its owner's Premium lapsed"
    ]


def test_the_sign_in_issue_holds_a_link_that_names_its_user(github, db_url, conn):
    from urllib.parse import parse_qs, urlparse

    from sync.signin.link import check_state

    settings = _settings(github, db_url)
    key = add_user(conn, "alice", status="needs_reauth")
    _notify(conn, settings, None, START)
    body = github.state.issues[1].body
    url = body.split("[sign in with Spotify](", 1)[1].split(")", 1)[0]
    query = parse_qs(urlparse(url).query)
    assert query["client_id"] == ["client-id-123456"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8888/callback"]
    assert check_state(settings, query["state"][0], START) == key
    assert "client-secret-123456" not in body
    # The link text stays put for days: an hourly run does not rewrite the issue.
    assert _notify(conn, settings, None, START + timedelta(hours=5)).updated == []
