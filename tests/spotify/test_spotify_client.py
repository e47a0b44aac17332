"""The request funnel: 429 through the shared RateGate, bounded 5xx backoff, typed errors."""

from __future__ import annotations

import threading

import pytest
import requests
import responses

from sync.spotify.client import (
    Forbidden,
    InvalidClient,
    InvalidGrant,
    RateLimited,
    TemporaryError,
    Unauthorized,
)
from tests.support.sync_helpers import RECENT_URL, TOKEN_URL, FakeTime, make_client

ME_URL = RECENT_URL.replace("/me/player/recently-played", "/me")
EMPTY = {"items": [], "next": None, "cursors": None, "limit": 50}


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


def _429(rsps, url, seconds):
    rsps.get(url, status=429, headers={"Retry-After": str(seconds)}, json={"error": {}})


def test_429_waits_retry_after_then_succeeds(rsps):
    fake = FakeTime()
    client = make_client(fake)
    _429(rsps, RECENT_URL, 7)
    rsps.get(RECENT_URL, json=EMPTY)
    assert client.get(RECENT_URL, "access-token-xyz") == EMPTY
    assert fake.sleeps == [7.0]
    assert len(rsps.calls) == 2


def test_429_longer_than_the_cap_raises_rate_limited_and_stops_the_run(rsps):
    fake = FakeTime()
    client = make_client(fake, retry_after_cap=120.0)
    _429(rsps, RECENT_URL, 121)
    with pytest.raises(RateLimited) as err:
        client.get(RECENT_URL, "access-token-xyz")
    assert err.value.retry_after == 121.0
    assert fake.sleeps == []  # nothing waits for a pause it will not get
    assert len(rsps.calls) == 1
    assert client.control.stopped
    assert client.control.reason == str(err.value)
    assert "Retry-After 121 s" in str(err.value)


def test_429_pauses_every_worker_through_the_shared_gate(rsps):
    """Limits are per app: while one worker waits out Retry-After, another worker's request
    waits too instead of going out and earning another 429."""
    fake = FakeTime()
    client = make_client(fake)
    _429(rsps, RECENT_URL, 5)
    rsps.get(RECENT_URL, json=EMPTY)
    rsps.get(ME_URL, json={"id": "bob"})
    other_done = threading.Event()
    other: list = []

    def other_worker() -> None:
        other.append(client.get(ME_URL, "access-token-bob"))
        other_done.set()

    def first_sleep(seconds: float) -> None:
        # Runs while worker A is paused by the 429: worker B starts a request now.
        if len(fake.sleeps) == 1:
            threading.Thread(target=other_worker, name="worker-B").start()
            assert other_done.wait(5)

    fake.on_sleep = first_sleep
    result: list = []
    worker_a = threading.Thread(
        target=lambda: result.append(client.get(RECENT_URL, "access-token-al")), name="worker-A"
    )
    worker_a.start()
    worker_a.join(10)
    assert result == [EMPTY]
    assert other == [{"id": "bob"}]
    # A waited the full Retry-After; B, arriving during the pause, waited too.
    assert list(zip(fake.sleepers, fake.sleeps, strict=True)) == [
        ("worker-A", 5.0),
        ("worker-B", 5.0),
    ]
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [RECENT_URL, ME_URL, RECENT_URL]


def test_429_too_often_is_rate_limited_a_temporary_error(rsps):
    fake = FakeTime()
    client = make_client(fake, max_rate_limit_retries=2)
    for _ in range(3):
        _429(rsps, RECENT_URL, 1)
    with pytest.raises(RateLimited) as err:
        client.get(RECENT_URL, "access-token-xyz")
    assert isinstance(err.value, TemporaryError)
    assert err.value.status == 429
    assert len(rsps.calls) == 3
    assert fake.sleeps == [1.0, 1.0]
    assert client.control.stopped


def test_5xx_backs_off_exponentially_with_jitter_then_succeeds(rsps):
    fake = FakeTime()
    client = make_client(fake, jitter=0.5, backoff_base=1.0)
    for status in (500, 502, 503):
        rsps.get(RECENT_URL, status=status, json={"error": {"status": status}})
    rsps.get(RECENT_URL, json=EMPTY)
    assert client.get(RECENT_URL, "access-token-xyz") == EMPTY
    # base * 2**attempt, scaled by (0.5 + jitter/2) = 0.75
    assert fake.sleeps == [0.75, 1.5, 3.0]


def test_5xx_backoff_is_bounded_in_attempts_and_delay(rsps):
    fake = FakeTime()
    client = make_client(fake, jitter=1.0, max_retries=6, backoff_base=1.0, backoff_cap=10.0)
    for _ in range(7):
        rsps.get(RECENT_URL, status=503, json={"error": {"status": 503}})
    with pytest.raises(TemporaryError) as err:
        client.get(RECENT_URL, "access-token-xyz")
    assert err.value.status == 503
    assert len(rsps.calls) == 7  # the first try and max_retries retries, no more
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_spreads_the_delay(rsps):
    delays = []
    for jitter in (0.0, 1.0):
        fake = FakeTime()
        client = make_client(fake, jitter=jitter)
        rsps.get(RECENT_URL, status=500, json={})
        rsps.get(RECENT_URL, json=EMPTY)
        client.get(RECENT_URL, "access-token-xyz")
        delays += fake.sleeps
    assert delays == [0.5, 1.0]


def test_timeouts_and_connection_errors_are_retried_then_temporary(rsps):
    fake = FakeTime()
    client = make_client(fake, max_retries=2)
    rsps.get(RECENT_URL, body=requests.ConnectTimeout("slow"))
    rsps.get(RECENT_URL, body=requests.ConnectionError("reset"))
    rsps.get(RECENT_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(TemporaryError, match="timeout"):
        client.get(RECENT_URL, "access-token-xyz")
    assert len(fake.sleeps) == 2


def test_every_call_has_a_timeout(rsps):
    client = make_client(FakeTime(), timeout=(3.0, 9.0))
    rsps.get(RECENT_URL, json=EMPTY)
    rsps.post(TOKEN_URL, json={"access_token": "new-access-123", "expires_in": 3600})
    client.get(RECENT_URL, "access-token-xyz")
    client.refresh("refresh-token-xyz")
    assert [c.request.req_kwargs["timeout"] for c in rsps.calls] == [(3.0, 9.0), (3.0, 9.0)]


def test_one_session_for_every_call(rsps):
    client = make_client(FakeTime())
    rsps.get(RECENT_URL, json=EMPTY)
    rsps.post(TOKEN_URL, json={"access_token": "new-access-123", "expires_in": 3600})
    session = client.session
    client.get(RECENT_URL, "access-token-xyz")
    client.refresh("refresh-token-xyz")
    assert client.session is session
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "Refresh token revoked"},
         InvalidGrant),
        (400, {"error": "invalid_client", "error_description": "Invalid client"}, InvalidClient),
        (401, {"error": {"status": 401, "message": "The access token expired"}}, Unauthorized),
        (403, {"error": {"status": 403, "message": "User not registered"}}, Forbidden),
    ],
)  # fmt: skip
def test_client_errors_are_typed_and_not_retried(rsps, status, body, error):
    fake = FakeTime()
    client = make_client(fake)
    rsps.post(TOKEN_URL, status=status, json=body)
    with pytest.raises(error) as err:
        client.refresh("refresh-token-secret-123")
    assert len(rsps.calls) == 1
    assert fake.sleeps == []
    assert err.value.status == status
    assert "refresh-token-secret-123" not in str(err.value)


def test_refresh_sends_basic_auth_and_reads_rotation(rsps):
    client = make_client(FakeTime())
    rsps.post(
        TOKEN_URL,
        json={"access_token": "acc-1", "expires_in": 3600, "refresh_token": "rot-2", "scope": "s"},
    )
    answer = client.refresh("refresh-1")
    request = rsps.calls[0].request
    assert request.headers["Authorization"].startswith("Basic ")
    assert "grant_type=refresh_token" in request.body
    assert (answer.access_token, answer.refresh_token, answer.scope) == ("acc-1", "rot-2", "s")


def test_refresh_without_new_refresh_token_reports_none(rsps):
    client = make_client(FakeTime())
    rsps.post(TOKEN_URL, json={"access_token": "acc-1", "expires_in": 3600})
    assert client.refresh("refresh-1").refresh_token is None


def test_the_sign_in_listener_never_blocks_in_accept_past_its_deadline():
    from sync.spotify.listener import CallbackListener
    from sync.spotify.oauth import parse_redirect_uri
    from tests.support.standin import returns_without_a_connection

    listener = CallbackListener(parse_redirect_uri("http://127.0.0.1:0/callback"), "state")
    try:  # select() may report a connection that is gone by accept(): a bounded accept
        assert returns_without_a_connection(listener.server)
    finally:
        listener.close()
