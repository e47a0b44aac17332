"""The client under the run's brakes: deadline and stop for every wait, rate-limit storms,
token POSTs sent at most once when they may have reached Spotify, `next` links kept on the
API host, and tokens kept out of reprs and log lines."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
import responses

from sync.control import RunControl, Stopped
from sync.spotify.client import RateLimited, SpotifyClient, TemporaryError, TokenResponse
from sync.store.users import User
from tests.support.sync_helpers import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    RECENT_URL,
    TOKEN_URL,
    FakeTime,
    fake_control,
    make_client,
)

EMPTY = {"items": [], "next": None, "cursors": None, "limit": 50}
TOKEN_ANSWER = {"access_token": "access-new-0042-deadbeef", "expires_in": 3600}


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


def _429(rsps, seconds):
    rsps.get(RECENT_URL, status=429, headers={"Retry-After": str(seconds)}, json={"error": {}})


def _503(rsps, url=RECENT_URL, times=1):
    for _ in range(times):
        rsps.get(url, status=503, json={"error": {"status": 503}})


# -- rate-limit storms ----------------------------------------------------------
@pytest.mark.parametrize("retry_after", [3600, 30])  # over the cap; under it but past the deadline
def test_429_that_cannot_be_waited_out_raises_rate_limited_and_stops_the_run(rsps, retry_after):
    fake = FakeTime()
    control = fake_control(fake, budget_s=20)
    client = make_client(fake, control=control)
    _429(rsps, retry_after)
    with pytest.raises(RateLimited) as err:
        client.get(RECENT_URL, "access-token-xyz")
    assert fake.now - control.started < 20
    assert fake.sleeps == []
    assert err.value.retry_after == retry_after
    assert err.value.status == 429
    assert control.stopped
    assert control.reason == (
        f"Spotify rate-limits this app (429, Retry-After {retry_after} s): the remaining "
        "users are skipped; the next run continues"
    )
    assert len(rsps.calls) == 1
    with pytest.raises(Stopped):  # every other worker's next request stops too
        client.get(RECENT_URL, "access-token-other")


def test_repeated_429s_within_the_cap_are_waited_out_then_succeed(rsps):
    fake = FakeTime()
    control = fake_control(fake, budget_s=60)
    client = make_client(fake, control=control)
    for seconds in (2, 3, 4):
        _429(rsps, seconds)
    rsps.get(RECENT_URL, json=EMPTY)
    assert client.get(RECENT_URL, "access-token-xyz") == EMPTY
    assert fake.sleeps == [2.0, 3.0, 4.0]
    assert not control.stopped


def test_retry_after_as_an_http_date_is_understood(rsps):
    fake = FakeTime()
    client = make_client(fake, control=fake_control(fake, budget_s=20))
    rsps.get(RECENT_URL, status=429, headers={"Retry-After": "Wed, 01 Jan 2100 00:00:00 GMT"})
    with pytest.raises(RateLimited) as err:
        client.get(RECENT_URL, "access-token-xyz")
    assert err.value.retry_after > 3600 * 24 * 365


# -- deadline and stop ----------------------------------------------------------
def test_the_deadline_cuts_a_5xx_storm_short_without_sleeping_past_it(rsps):
    fake = FakeTime()
    control = fake_control(fake, budget_s=10)
    client = make_client(fake, control=control, jitter=1.0, max_retries=8)
    _503(rsps, times=4)  # a fifth request would fail the test: responses has no answer
    with pytest.raises(Stopped, match="time budget reached: Spotify answered 503"):
        client.get(RECENT_URL, "access-token-xyz")
    assert fake.sleeps == [1.0, 2.0, 4.0]  # the 8 s backoff would end after the deadline
    assert fake.now - control.started < 10
    assert len(rsps.calls) == 4
    assert not control.stopped  # one user out of time; the others may still finish theirs


def test_request_timeouts_shrink_to_the_time_left(rsps):
    fake = FakeTime()
    control = fake_control(fake, budget_s=10)
    client = make_client(fake, control=control, timeout=(5.0, 20.0))
    rsps.get(RECENT_URL, json=EMPTY)
    rsps.get(RECENT_URL, json=EMPTY)
    client.get(RECENT_URL, "access-token-xyz")
    fake.advance(8)
    client.get(RECENT_URL, "access-token-xyz")
    assert [c.request.req_kwargs["timeout"] for c in rsps.calls] == [(5.0, 11.0), (3.0, 3.0)]


def test_no_request_goes_out_after_the_deadline(rsps):
    fake = FakeTime()
    client = make_client(fake, control=fake_control(fake, budget_s=10))
    fake.advance(10)
    with pytest.raises(Stopped, match="time budget reached"):
        client.get(RECENT_URL, "access-token-xyz")
    assert len(rsps.calls) == 0


def test_a_stopped_run_sends_nothing_and_waits_for_nothing(rsps):
    control = RunControl(None)  # real waits on an Event
    client = SpotifyClient(API, "https://accounts.spotify.test", CLIENT_ID, CLIENT_SECRET,
                           control=control)  # fmt: skip
    control.stop("signal SIGTERM")
    with pytest.raises(Stopped, match="signal SIGTERM"):
        client.get(RECENT_URL, "access-token-xyz")
    assert len(rsps.calls) == 0


class _RetryLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry 1 in" in record.getMessage():
            self.seen.set()


def test_stop_from_another_thread_wakes_a_long_backoff_at_once(rsps):
    """A real RunControl (no injected sleep): the worker waits an hour-long backoff on the
    stop Event; stop() from the main thread (a signal handler) must end it at once."""
    control = RunControl(None)
    client = SpotifyClient(API, "https://accounts.spotify.test", CLIENT_ID, CLIENT_SECRET,
                           control=control, backoff_base=3600.0, backoff_cap=3600.0)  # fmt: skip
    _503(rsps)
    handler = _RetryLogged()
    logger = logging.getLogger("sync.spotify.client")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            client.get(RECENT_URL, "access-token-xyz")
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome.append(exc)

    thread = threading.Thread(target=worker, name="worker")
    try:
        began = time.monotonic()
        thread.start()
        assert handler.seen.wait(30), "the worker never reached its backoff"
        control.stop("signal SIGTERM")
        thread.join(30)
        elapsed = time.monotonic() - began
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert outcome[0].reason == "signal SIGTERM"
    assert elapsed < 2  # an Event wakes at once; the backoff was 1800-3600 s
    assert len(rsps.calls) == 1


# -- token POSTs --------------------------------------------------------------------
@pytest.mark.parametrize(
    "failure", [requests.ReadTimeout("slow"), requests.ConnectionError("reset")]
)
def test_token_post_that_may_have_reached_spotify_is_not_sent_again(rsps, failure):
    fake = FakeTime()
    client = make_client(fake)
    rsps.post(TOKEN_URL, body=failure)
    rsps.post(TOKEN_URL, json=TOKEN_ANSWER)
    with pytest.raises(TemporaryError) as err:
        client.refresh("refresh-token-secret-123")
    assert len(rsps.calls) == 1
    assert fake.sleeps == []
    assert "Spotify may have rotated the refresh token" in str(err.value)
    assert "invalid_grant, sign in again" in str(err.value)
    rsps.assert_call_count(TOKEN_URL, 1)
    rsps.reset()  # the second answer was deliberately never asked for


def test_token_post_connect_timeout_is_retried(rsps):
    fake = FakeTime()
    client = make_client(fake)
    rsps.post(TOKEN_URL, body=requests.ConnectTimeout("slow"))
    rsps.post(TOKEN_URL, json=TOKEN_ANSWER)
    assert client.refresh("refresh-1").access_token == TOKEN_ANSWER["access_token"]
    assert len(rsps.calls) == 2
    assert fake.sleeps == [1.0]


def test_token_post_5xx_is_retried(rsps):
    fake = FakeTime()
    client = make_client(fake)
    rsps.post(TOKEN_URL, status=502, json={})
    rsps.post(TOKEN_URL, json=TOKEN_ANSWER)
    assert client.refresh("refresh-1").access_token == TOKEN_ANSWER["access_token"]
    assert len(rsps.calls) == 2


def test_token_post_to_a_refusing_host_is_retried_nothing_was_sent():
    """Real sockets: connection refused means the request never left, so a retry is safe."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nobody listens there
    fake = FakeTime()
    client = SpotifyClient(API, f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET,
                           sleep=fake.sleep, clock=fake.clock, jitter=lambda: 1.0,
                           max_retries=2)  # fmt: skip
    with pytest.raises(TemporaryError, match="connection error talking to Spotify"):
        client.refresh("refresh-1")
    assert fake.sleeps == [1.0, 2.0]


# -- `next` links -------------------------------------------------------------------
@pytest.mark.parametrize(
    "next_url",
    [
        "https://elsewhere.test/v1/me/player/recently-played?before=1&secret=q1",
        f"{API}evil/me/player/recently-played?before=1&secret=q1",
        "https://api.spotify.test.evil.test/v1/me/player/recently-played?before=1&secret=q1",
    ],
)
def test_next_link_off_the_api_base_is_not_followed(rsps, caplog, next_url):
    client = make_client(FakeTime())
    rsps.get(RECENT_URL, json={**EMPTY, "items": [{"played_at": "x"}], "next": next_url})
    with caplog.at_level(logging.WARNING, logger="sync.spotify.client"):
        pages = list(client.recently_played_pages("access-token-xyz", who="user-2"))
    assert len(pages) == 1
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [RECENT_URL]
    [record] = caplog.records
    assert record.getMessage().startswith("user-2: Spotify's next link leaves")
    assert "secret=q1" not in caplog.text and "before=1" not in caplog.text


def test_next_link_on_the_api_base_is_followed(rsps):
    client = make_client(FakeTime())
    rsps.get(RECENT_URL, json={**EMPTY, "next": f"{RECENT_URL}?before=1"})
    rsps.get(RECENT_URL, json=EMPTY)
    assert len(list(client.recently_played_pages("access-token-xyz"))) == 2


def test_get_refuses_to_send_the_token_off_the_api_base(rsps):
    client = make_client(FakeTime())
    with pytest.raises(ValueError, match="elsewhere.test"):
        client.get("https://elsewhere.test/v1/me", "access-token-xyz")
    assert len(rsps.calls) == 0


# -- no tokens in reprs or log lines ---------------------------------------------------
def test_reprs_show_no_tokens():
    answer = TokenResponse("access-secret-111", 3600, "refresh-secret-222", "scope-a")
    user = User(7, "alice", "refresh-secret-333", "access-secret-444",
                datetime(2026, 1, 1, tzinfo=UTC), "scope-a", datetime(2026, 1, 1, tzinfo=UTC),
                "active", None)  # fmt: skip
    text = repr(answer) + repr(user)
    for secret in ("access-secret-111", "refresh-secret-222", "refresh-secret-333",
                   "access-secret-444"):  # fmt: skip
        assert secret not in text
    assert "expires_in=3600" in text and "key=7" in text


def test_retry_log_lines_name_the_alias_and_no_token(rsps, caplog):
    fake = FakeTime()
    client = make_client(fake, jitter=0.0)
    rsps.post(TOKEN_URL, status=503, json={})
    rsps.post(TOKEN_URL, json={**TOKEN_ANSWER, "access_token": "access-secret-555"})
    _503(rsps)
    rsps.get(RECENT_URL, body=requests.ConnectTimeout("slow"))
    rsps.get(RECENT_URL, status=429, headers={"Retry-After": "2"}, json={})
    rsps.get(RECENT_URL, json=EMPTY)
    with caplog.at_level(logging.INFO, logger="sync.spotify.client"):
        token = client.refresh("refresh-secret-666", who="user-3").access_token
        list(client.recently_played_pages(token, who="user-3"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "user-3: Spotify answered 503; retry 1 in 0.5s",
        "user-3: Spotify answered 503; retry 1 in 0.5s",
        "user-3: timeout talking to Spotify; retry 2 in 1.0s",
        "user-3: Spotify answered 429; every worker waits 2.0s",
    ]
    for secret in ("access-secret-555", "refresh-secret-666", CLIENT_SECRET):
        assert secret not in caplog.text
