"""Access tokens: reuse, refresh, rotation persisted first, invalid_grant, temporary failures,
one refresh on a 401, and warnings before Spotify's 6-month refresh-token limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests

from sync.job import tokens
from sync.store.users import User
from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.sync_helpers import server_error, unauthorized

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _token_row(conn, user_id="alice"):
    return conn.execute(
        "select refresh_token, access_token, access_token_expires_at, status, status_reason "
        "from user_tokens where user_id = %s",
        (user_id,),
    ).fetchone()


def test_valid_access_token_is_reused_without_a_token_request(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001", access_token="access-cached-alice-1",
             expires_at=datetime.now(UTC) + timedelta(minutes=10))  # fmt: skip
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.grant_access("alice", "access-cached-alice-1")
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert spotify.token_requests == []
    assert spotify.data_calls("alice") == 1
    assert result.report["tracks_added"] == 5


def test_token_valid_for_under_60s_is_refreshed(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001", access_token="access-cached-alice-1",
             expires_at=datetime.now(UTC) + timedelta(seconds=50))  # fmt: skip
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.grant_access("alice", "access-cached-alice-1")
    before = datetime.now(UTC)
    result = run("run")
    assert result.code == 0, result.err
    assert spotify.token_requests == ["refresh-alice-0001"]
    refresh, access, expires, status, _ = _token_row(conn)
    assert access == spotify.issued[0]
    assert before + timedelta(seconds=3500) < expires < before + timedelta(seconds=3700)
    assert (refresh, status) == ("refresh-alice-0001", "active")


def test_rotated_refresh_token_is_committed_before_the_data_fetch(run, spotify, conn, db_url):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.rotate.add("alice")
    seen_at_fetch: list[str] = []

    def read_committed_token(user):
        with psycopg.connect(db_url) as other:  # another session sees committed data only
            seen_at_fetch.append(_token_row(other)[0])

    spotify.before_data = read_committed_token
    spotify.data_queue["alice"] = [server_error(503)] * 5  # the fetch then fails for good
    result = run("run", "--json")
    rotated = next(t for t in spotify.issued if t.startswith("refresh-alice-rotated"))
    assert seen_at_fetch[0] == rotated
    assert result.code == 1
    assert result.report["users"][0]["status"] == "failed"
    assert _token_row(conn)[0] == rotated  # survived the failed fetch
    assert _token_row(conn)[3] == "active"


def test_old_refresh_token_is_kept_when_none_comes_back(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    result = run("run")
    assert result.code == 0, result.err
    refresh, access, *_ = _token_row(conn)
    assert refresh == "refresh-alice-0001"
    assert access == spotify.issued[0]


def test_invalid_grant_marks_needs_reauth_once_and_spares_other_users(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-revoked")  # unknown to Spotify: invalid_grant
    add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 4))
    first = run("run", "--json")
    assert first.code == 1
    assert spotify.token_requests.count("refresh-alice-revoked") == 1  # never retried
    statuses = {u["user_id"]: u["status"] for u in first.report["users"]}
    assert statuses == {"user-1": "needs_reauth", "user-2": "ok"}
    assert first.report["users_synced"] == 1
    refresh, access, _, status, reason = _token_row(conn, "alice")
    assert status == "needs_reauth"
    assert "invalid_grant" in reason and "Refresh token revoked" in reason
    assert refresh == "refresh-alice-revoked"  # kept for the record, never printed
    assert conn.execute("select count(*) from listening_history").fetchone()[0] == 4

    second = run("run", "--json")
    assert second.code == 0
    assert spotify.token_requests.count("refresh-alice-revoked") == 1  # skipped, not retried
    alice = second.report["users"][0]
    assert alice["status"] == "needs_reauth"
    assert "sign in again" in second.err
    assert "user-1: warning:" in second.err


def test_5xx_on_refresh_is_retried_with_backoff_then_fails_with_token_untouched(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001", access_token="access-old-alice-1",
             expires_at=datetime.now(UTC) - timedelta(minutes=5))  # fmt: skip
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.token_queue["refresh-alice-0001"] = [server_error(502)] * 5
    before = _token_row(conn)
    result = run("run", "--json")
    assert result.code == 1
    user = result.report["users"][0]
    assert user["status"] == "failed"
    assert "502" in user["error"]
    assert spotify.token_requests == ["refresh-alice-0001"] * 5  # first try + 4 retries
    assert run.time.sleeps == [1.0, 2.0, 4.0, 8.0]  # exponential, injected: no real sleep
    assert _token_row(conn) == before  # token, expiry and status untouched
    retries = [line for line in result.err.splitlines() if " retry " in line]
    assert retries[0] == "user-1: Spotify answered 502; retry 1 in 1.0s"  # the alias, no id
    assert len(retries) == 4 and not any("alice" in line for line in retries)
    assert spotify.data_calls("alice") == 0


def test_timeouts_on_refresh_are_temporary_and_keep_the_token(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.token_queue["refresh-alice-0001"] = [
        requests.ConnectTimeout("slow"),
        requests.ConnectTimeout("slow"),
    ]
    result = run("run", "--json")  # two connect timeouts (nothing sent), then the refresh works
    assert result.code == 0, result.err
    assert len(run.time.sleeps) == 2
    assert result.report["tracks_added"] == 5

    # A read timeout: Spotify may have rotated the token, so no second refresh is sent.
    spotify.token_queue["refresh-alice-0001"] = [requests.ReadTimeout("slow")] * 5
    conn.execute("update user_tokens set access_token = null, access_token_expires_at = null")
    before = _token_row(conn)
    spotify.token_requests.clear()
    failed = run("run", "--json")
    assert failed.code == 1
    assert failed.report["users"][0]["status"] == "failed"
    assert "may have rotated the refresh token" in failed.report["users"][0]["error"]
    assert spotify.token_requests == ["refresh-alice-0001"]
    assert _token_row(conn) == before
    assert before[3] == "active"


def test_401_on_data_call_gets_exactly_one_refresh_and_one_retry(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001", access_token="access-revoked-alice",
             expires_at=datetime.now(UTC) + timedelta(minutes=30))  # fmt: skip
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    result = run("run", "--json")  # Spotify no longer accepts the stored access token
    assert result.code == 0, result.err
    assert spotify.token_requests == ["refresh-alice-0001"]
    assert spotify.data_calls("alice") == 1  # the retry, with the new token
    assert len(spotify.data_requests) == 2
    assert result.report["tracks_added"] == 5


def test_second_401_fails_the_user_without_another_refresh(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.data_queue["alice"] = [unauthorized(), unauthorized(), unauthorized()]
    result = run("run", "--json")
    assert result.code == 1
    assert len(spotify.token_requests) == 2  # the initial refresh and the single 401 refresh
    assert len(spotify.data_requests) == 2
    assert result.report["users"][0]["status"] == "failed"
    assert _token_row(conn)[3] == "active"


def test_401_refresh_uses_the_rotated_refresh_token(run, spotify, conn):
    """A refresh that rotated the token, then a 401: the second refresh must send the new
    refresh token (the old one is spent), not mark the user needs_reauth."""
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 5))
    spotify.rotate.add("alice")
    spotify.data_queue["alice"] = [unauthorized()]
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert spotify.token_requests[0] == "refresh-alice-0001"
    assert spotify.token_requests[1].startswith("refresh-alice-rotated")
    assert result.report["users"][0]["status"] == "ok"
    assert _token_row(conn)[0] == spotify.issued[-1]


# -- the 6-month limit --------------------------------------------------------
def _user(authorized_at: datetime) -> User:
    return User(1, "alice", "r", None, None, None, authorized_at, "active", None)


def test_refresh_token_expiry_is_six_calendar_months():
    assert tokens.refresh_token_expires_at(datetime(2026, 8, 31, 9, tzinfo=UTC)) == (
        datetime(2027, 2, 28, 9, tzinfo=UTC)
    )
    assert tokens.refresh_token_expires_at(datetime(2026, 3, 15, tzinfo=UTC)) == (
        datetime(2026, 9, 15, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("days_left", "warns", "days_text"),
    [(45, False, None), (31, False, None), (30, True, "29 days"), (20, True, "19 days"),
     (7, True, "6 days"), (3, True, "2 days")],
)  # fmt: skip
def test_expiry_warning_from_30_days_before(days_left, warns, days_text):
    authorized = datetime(2026, 3, 15, tzinfo=UTC)
    expires = datetime(2026, 9, 15, tzinfo=UTC)
    now = expires - timedelta(days=days_left) + timedelta(minutes=1)
    warning = tokens.expiry_warning(_user(authorized), now)
    assert (warning is not None) == warns
    if warns:
        assert days_text in warning
        assert "2026-09-15" in warning


def test_expired_refresh_token_warns_to_sign_in_again():
    warning = tokens.expiry_warning(
        _user(datetime(2026, 1, 1, tzinfo=UTC)), datetime(2026, 7, 2, tzinfo=UTC)
    )
    assert "past Spotify's 6-month limit" in warning


def test_expiry_warning_reaches_summary_and_annotation(run, spotify, conn):
    now = datetime.now(UTC)
    add_user(conn, "alice", "refresh-alice-0001", authorized_at=now - timedelta(days=170))
    add_user(conn, "bob", "refresh-bob-0001", authorized_at=now - timedelta(days=10))
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 2, start_n=10))
    summary = run.actions()
    result = run("run", "--json")
    assert result.code == 0, result.err  # a warning does not fail the run
    alice, bob = result.report["users"]
    assert any("refresh token expires in" in w for w in alice["warnings"])
    assert bob["warnings"] == []
    with open(summary) as fh:
        text = fh.read()
    assert "user-1: refresh token expires in" in text
    assert "user-2: refresh token" not in text
    annotations = [line for line in result.err.splitlines() if line.startswith("::warning")]
    assert any("title=user-1::refresh token expires in" in line for line in annotations)
    assert not any("user-2" in line for line in annotations)
