"""Refusals of the whole Spotify app (the owner's Premium lapsed, wrong client credentials):
the run stops, the users not started are skipped with the reason, and the cause and fix
are said once for the run, never as per-user advice about User Management."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

from sync import db
from sync.control import RunControl
from sync.job.pipeline import Context, Options, run_sync
from sync.redact import Redactor
from sync.signin.flow import _profile_id
from sync.spotify.client import AppOwnerNotPremium, Forbidden
from sync.spotify.oauth import LoginFailed
from sync.statuses import AppProblem, Outcome
from sync.store import runs as runs_store
from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.sync_helpers import RECENT_URL, TOKEN_URL, FakeTime, make_client

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ME_URL = RECENT_URL.replace("/me/player/recently-played", "/me")
PREMIUM_MESSAGE = "Active premium subscription required for the owner of the app"
PREMIUM_403 = (403, {"error": {"status": 403, "message": PREMIUM_MESSAGE}}, {})
PREMIUM_REASON = "Spotify stopped the app: its owner's Premium lapsed"
FIVE = ("alice", "bob", "carol", "dave", "erin")


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


def _five_users(conn, spotify, data_answer=PREMIUM_403) -> None:
    for name in FIVE:
        add_user(conn, name, f"refresh-{name}-0001")
        spotify.add_user(name, f"refresh-{name}-0001", window(NEWEST, 2))
        if data_answer is not None:
            spotify.data_queue[name] = [data_answer]


def _context(fake: FakeTime, **options) -> Context:
    control = RunControl(clock=fake.clock, sleep=fake.sleep)
    return Context(client=make_client(fake, control=control), redactor=Redactor(),
                   options=Options(**options), control=control,
                   name=lambda key, user_id: f"user-{key}")  # fmt: skip


def _stored_statuses(conn) -> tuple[list[tuple], list[str]]:
    runs = conn.execute(
        "select r.status, r.error_class, r.error from sync_run_users r "
        "join user_tokens u on u.id = r.user_id "
        "where r.run_id = (select max(id) from sync_runs) order by u.user_id"
    ).fetchall()
    tokens = [r[0] for r in conn.execute("select status from user_tokens order by user_id")]
    return runs, tokens


# -- the client ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", RECENT_URL, {"error": {"status": 403, "message": PREMIUM_MESSAGE}}),
        ("GET", RECENT_URL, {"error": {"status": 403,
                                       "message": "ACTIVE PREMIUM SUBSCRIPTION REQUIRED FOR "
                                                  "THE OWNER OF THE APP."}}),
        ("POST", TOKEN_URL, {"error": "forbidden", "error_description": PREMIUM_MESSAGE}),
        ("POST", TOKEN_URL, {"error": PREMIUM_MESSAGE}),
    ],
)  # fmt: skip
def test_a_premium_403_is_a_refusal_of_the_app_not_of_the_user(rsps, method, url, body):
    fake = FakeTime()
    client = make_client(fake)
    rsps.add(method, url, status=403, json=body)
    with pytest.raises(AppOwnerNotPremium) as err:
        if method == "GET":
            client.get(RECENT_URL, "access-token-xyz")
        else:
            client.refresh("refresh-token-secret-123")
    assert not isinstance(err.value, Forbidden)  # per-user 403 handling must not catch it
    assert str(err.value) == (
        "Spotify refuses the app: its owner's Premium subscription has lapsed (a "
        "development-mode app needs its owner to have Premium); renew Premium on the app "
        "owner's account, then the next run continues"
    )
    assert err.value.status == 403
    assert len(rsps.calls) == 1 and fake.sleeps == []  # not retried
    assert "refresh-token-secret-123" not in str(err.value)


def test_only_the_owner_premium_phrase_refuses_the_app_other_403s_stay_per_user(rsps):
    client = make_client(FakeTime())
    for message in ("Premium required?", "User not registered", PREMIUM_MESSAGE):
        rsps.get(RECENT_URL, status=403, json={"error": {"status": 403, "message": message}})
    for _ in range(2):
        with pytest.raises(Forbidden, match="User Management"):
            client.get(RECENT_URL, "access-token-xyz")
    with pytest.raises(AppOwnerNotPremium):
        client.get(RECENT_URL, "access-token-xyz")


# -- the run ------------------------------------------------------------------------
def test_a_lapsed_premium_fails_one_user_skips_the_rest_and_says_the_fix_once(run, spotify, conn):
    summary = run.actions()
    _five_users(conn, spotify)
    result = run("run", "--concurrency", "1", "--json")
    assert result.code == 1, result.err
    report = result.report
    assert report["app_problem"] == "premium_lapsed"
    users = [(u["user_id"], u["status"], u["error"]) for u in report["users"]]
    assert users[0][:2] == ("user-1", "failed") and "renew Premium" in users[0][2]
    assert users[1:] == [(f"user-{n}", "skipped", PREMIUM_REASON) for n in range(2, 6)]
    assert [spotify.data_calls(name) for name in FIVE] == [1, 0, 0, 0, 0]

    runs, tokens = _stored_statuses(conn)
    assert [r[:2] for r in runs] == [("failed", "AppOwnerNotPremium")] + [("skipped", None)] * 4
    assert [r[2] for r in runs[1:]] == [PREMIUM_REASON] * 4
    assert tokens == ["active"] * 5  # nobody must sign in again

    text = Path(summary).read_text()
    premium = [line for line in text.splitlines() if "Premium" in line]
    assert len(premium) == 1, text  # cause and fix once, not in each user's row
    assert "renew Premium on the app owner's account" in premium[0]
    assert "User Management" not in text + result.err
    assert "refused" not in text.replace("Spotify refused the whole app", "")
    log = result.err
    premium = [line for line in log.splitlines() if "renew Premium" in line]
    assert premium == [f"::error title=Spotify app::{users[0][2]}"], log
    assert "::notice" not in log and "::warning" not in log  # no per-user repeats
    assert log.count("::error") == 1


def test_outside_github_actions_the_log_says_the_fix_once(run, spotify, conn):
    _five_users(conn, spotify)
    result = run("run", "--concurrency", "1")
    assert result.code == 1
    premium = [line for line in result.err.splitlines() if "renew Premium" in line]
    assert len(premium) == 1 and premium[0].startswith("run stopped: Spotify refuses the app")
    assert "User Management" not in result.err


def test_users_in_flight_fail_and_users_not_started_are_skipped(db_url, conn, spotify):
    _five_users(conn, spotify)
    three_in_flight = threading.Barrier(3, timeout=10)
    spotify.before_data = lambda user: three_in_flight.wait()
    fake = FakeTime()
    result = run_sync(db_url, db.connect, runs_store.candidates(conn),
                      _context(fake, concurrency=3), run_id=None)  # fmt: skip
    assert result.app_problem == AppProblem.PREMIUM_LAPSED
    assert result.exit_code == 1
    assert result.stopped == PREMIUM_REASON
    failed = [u for u in result.users if u.status == Outcome.FAILED]
    skipped = [u for u in result.users if u.status == Outcome.SKIPPED]
    assert len(failed) == 3 and len(skipped) == 2
    assert {u.error_class for u in failed} == {"AppOwnerNotPremium"}
    assert all("renew Premium" in (u.error or "") for u in failed)
    assert [u.error for u in skipped] == [PREMIUM_REASON] * 2
    assert {u.app_problem for u in result.users} == {AppProblem.PREMIUM_LAPSED}
    assert not any(u.newly_needs_reauth or u.status in (Outcome.REFUSED, Outcome.NEEDS_REAUTH)
                   for u in result.users)  # fmt: skip
    assert all(spotify.data_calls(u.user_id) == 0 for u in skipped)


def test_a_premium_403_on_the_token_refresh_stops_the_run_and_keeps_the_tokens(run, spotify, conn):
    _five_users(conn, spotify, data_answer=None)
    accounts_premium = (403, {"error": "forbidden", "error_description": PREMIUM_MESSAGE}, {})
    spotify.token_queue["refresh-alice-0001"] = [accounts_premium]
    result = run("run", "--concurrency", "1", "--json")
    assert result.code == 1
    assert result.report["app_problem"] == "premium_lapsed"
    assert [u["status"] for u in result.report["users"]] == ["failed"] + ["skipped"] * 4
    assert spotify.token_requests == ["refresh-alice-0001"]
    runs, tokens = _stored_statuses(conn)
    assert tokens == ["active"] * 5
    stored = conn.execute("select refresh_token from user_tokens order by user_id").fetchall()
    assert [r[0] for r in stored] == [f"refresh-{name}-0001" for name in FIVE]


def test_wrong_client_credentials_are_said_once_too(run, spotify, conn):
    summary = run.actions()
    _five_users(conn, spotify, data_answer=None)
    invalid = (400, {"error": "invalid_client", "error_description": "Invalid client"}, {})
    spotify.token_queue["refresh-alice-0001"] = [invalid]
    result = run("run", "--concurrency", "1", "--json")
    assert result.code == 1
    assert result.report["app_problem"] == "invalid_client"
    assert [u["status"] for u in result.report["users"]] == ["failed"] + ["skipped"] * 4
    text = Path(summary).read_text()
    assert text.count("SPOTIFY_CLIENT_SECRET") == 1, text
    assert result.err.count("::error") == 1 and "::notice" not in result.err
    runs, tokens = _stored_statuses(conn)
    assert runs[0][1] == "InvalidClient" and tokens == ["active"] * 5


def test_a_plain_403_for_several_users_is_still_per_user(run, spotify, conn):
    summary = run.actions()
    _five_users(conn, spotify, (403, {"error": {"status": 403, "message": "nope"}}, {}))
    result = run("run", "--concurrency", "1", "--json")
    assert result.code == 1
    assert result.report["app_problem"] is None
    assert [u["status"] for u in result.report["users"]] == ["failed"] * 5
    assert Path(summary).read_text().count("User Management") == 5


# -- sign-in ------------------------------------------------------------------------
def test_sign_in_during_a_lapsed_premium_gives_the_premium_fix(rsps):
    rsps.get(ME_URL, status=403, json={"error": {"status": 403, "message": PREMIUM_MESSAGE}})
    with pytest.raises(LoginFailed) as err:
        _profile_id(make_client(FakeTime()), "access-token-xyz")
    text = str(err.value)
    assert text.startswith("Spotify refuses the app: its owner's Premium subscription has lapsed")
    assert "renew Premium on the app owner's account, then sign in again" in text
    assert "User Management" not in text
    # an account missing from User Management still gets that advice
    rsps.get(ME_URL, status=403, json={"error": {"status": 403, "message": "User not registered"}})
    with pytest.raises(LoginFailed, match="User Management"):
        _profile_id(make_client(FakeTime()), "access-token-xyz")
