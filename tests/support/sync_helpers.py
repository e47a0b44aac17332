"""In-process test doubles for the sync job: a fake clock and a Spotify faked with `responses`.

`FakeSpotify` answers the token endpoint and recently-played like the real service
(tokens per user, rotation, 50-play window, `next` links), and lets a test queue
special answers (5xx, 429, 401, invalid_grant, timeouts) per user.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import requests
import responses

from sync.control import RunControl
from sync.spotify.client import SpotifyClient

API = "https://api.spotify.test/v1"
ACCOUNTS = "https://accounts.spotify.test"
TOKEN_URL = f"{ACCOUNTS}/api/token"
RECENT_URL = f"{API}/me/player/recently-played"
CLIENT_ID = "client-id-for-tests"
CLIENT_SECRET = "client-secret-f00dcafe-9876"


class FakeTime:
    """A monotonic clock that moves only when something sleeps: records delays, never waits."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []
        self.sleepers: list[str] = []  # thread name of each sleep
        self._lock = threading.Lock()
        self.on_sleep: Callable[[float], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.sleepers.append(threading.current_thread().name)
        if self.on_sleep:
            self.on_sleep(seconds)
        with self._lock:
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def make_client(fake: FakeTime, jitter: float = 1.0, **kwargs) -> SpotifyClient:
    """A client against the fake hosts whose sleeps and jitter are injected."""
    return SpotifyClient(
        API,
        ACCOUNTS,
        CLIENT_ID,
        CLIENT_SECRET,
        sleep=fake.sleep,
        clock=fake.clock,
        jitter=lambda: jitter,
        **kwargs,
    )


def fake_control(fake: FakeTime, budget_s: float | None = None) -> RunControl:
    """A RunControl on the fake clock: its waits advance `fake` instead of sleeping."""
    return RunControl(budget_s, clock=fake.clock, sleep=fake.sleep)


Answer = tuple[int, dict, dict]  # status, JSON body, headers; or an exception instance


@dataclass
class FakeSpotify:
    """Spotify's token endpoint and recently-played, served through `responses` callbacks."""

    rsps: responses.RequestsMock
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    access_tokens: dict[str, str] = field(default_factory=dict)  # access token -> user
    plays: dict[str, list[dict]] = field(default_factory=dict)  # user -> items, newest first
    pages: dict[str, list[list[dict]]] = field(default_factory=dict)  # user -> explicit pages
    rotate: set[str] = field(default_factory=set)  # users whose refresh rotates the token
    omit_refresh: bool = True  # no refresh_token in answers unless rotating
    token_queue: dict[str, list] = field(default_factory=dict)  # refresh token -> answers
    data_queue: dict[str, list] = field(default_factory=dict)  # user -> answers
    token_requests: list[str] = field(default_factory=list)  # refresh tokens sent
    data_requests: list[tuple[str | None, str]] = field(default_factory=list)  # (user, url)
    before_data: Callable[[str | None], None] | None = None
    before_token: Callable[[str], None] | None = None  # called with the refresh token sent
    issued: list[str] = field(default_factory=list)  # every token handed out
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rsps.add_callback(responses.POST, TOKEN_URL, callback=self._token)
        self.rsps.add_callback(
            responses.GET, re.compile(re.escape(RECENT_URL) + r".*"), callback=self._recent
        )

    # -- set-up helpers ------------------------------------------------------
    def add_user(self, user: str, refresh_token: str, items: list[dict] | None = None) -> None:
        self.refresh_tokens[refresh_token] = user
        self.plays[user] = items or []

    def grant_access(self, user: str, token: str) -> None:
        self.access_tokens[token] = user

    # -- handlers ------------------------------------------------------------
    @staticmethod
    def _reply(answer) -> tuple[int, dict, str]:
        if isinstance(answer, BaseException):
            raise answer
        status, body, headers = answer
        return status, {"Content-Type": "application/json", **headers}, json.dumps(body)

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        form = {k: v[0] for k, v in parse_qs(request.body or "").items()}
        refresh = form.get("refresh_token", "")
        if self.before_token:
            self.before_token(refresh)
        with self._lock:
            self.token_requests.append(refresh)
            queued = self.token_queue.get(refresh)
            if queued:
                return self._reply(queued.pop(0))
            user = self.refresh_tokens.get(refresh)
            if user is None:
                body = {"error": "invalid_grant", "error_description": "Refresh token revoked"}
                return self._reply((400, body, {}))
            self._counter += 1
            access = f"access-{user}-{self._counter:04d}-deadbeef"
            self.access_tokens[access] = user
            self.issued.append(access)
            body = {"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                    "scope": "user-read-recently-played"}  # fmt: skip
            if user in self.rotate:
                new = f"refresh-{user}-rotated-{self._counter:04d}"
                del self.refresh_tokens[refresh]
                self.refresh_tokens[new] = user
                self.issued.append(new)
                body["refresh_token"] = new
            return self._reply((200, body, {}))

    def _recent(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        auth = request.headers.get("Authorization", "")
        with self._lock:
            user = self.access_tokens.get(auth.removeprefix("Bearer "))
            self.data_requests.append((user, request.url))
        if self.before_data:
            self.before_data(user)
        with self._lock:
            queued = self.data_queue.get(user or "")
            if queued:
                return self._reply(queued.pop(0))
        if user is None:
            return self._reply((401, {"error": {"status": 401, "message": "Invalid token"}}, {}))
        query = parse_qs(urlparse(request.url).query)
        index = int(query.get("page", ["0"])[0])
        if user in self.pages:
            pages = self.pages[user]
            items = pages[index] if index < len(pages) else []
            has_next = index + 1 < len(pages)
        else:
            items = self.plays.get(user, [])[:50] if index == 0 else []
            has_next = False
        nxt = f"{RECENT_URL}?limit=50&before=1&page={index + 1}" if has_next else None
        body = {"items": items, "next": nxt, "cursors": None, "limit": 50}
        return self._reply((200, body, {}))

    def data_calls(self, user: str) -> int:
        return sum(1 for u, _ in self.data_requests if u == user)


def server_error(status: int = 503) -> tuple[int, dict, dict]:
    return (status, {"error": {"status": status, "message": "Service unavailable"}}, {})


def rate_limited(seconds: int) -> tuple[int, dict, dict]:
    body = {"error": {"status": 429, "message": "API rate limit exceeded"}}
    return (429, body, {"Retry-After": str(seconds)})


def unauthorized() -> tuple[int, dict, dict]:
    return (401, {"error": {"status": 401, "message": "The access token expired"}}, {})


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def report(self) -> dict:
        return json.loads(self.out)


class CliRunner:
    """Runs `sync.cli.main([...])` in-process with a clean environment and injected time.

    Spotify's hosts point at FakeSpotify; the client's sleeps/jitter and the run's clock
    come from one FakeTime, so retries, Retry-After and time budgets never really wait.
    """

    def __init__(self, monkeypatch, capsys, tmp_path, db_url: str | None, jitter: float = 1.0):
        import functools
        import logging
        import os

        from sync.commands import run as run_command
        from sync.control import RunControl

        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.tmp_path = tmp_path
        self.time = FakeTime()
        for name in list(os.environ):
            if name.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "RUNNER_")) or name in (
                "DATABASE_URL",
                "CI",
            ):
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)  # no stray .env is picked up
        if db_url is not None:
            monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("SPOTIFY_API_URL", API)
        monkeypatch.setenv("SPOTIFY_ACCOUNTS_URL", ACCOUNTS)
        self.clients: list[SpotifyClient] = []
        real_client = run_command.SpotifyClient

        def client_factory(*args, **kwargs) -> SpotifyClient:
            kwargs.update(sleep=self.time.sleep, clock=self.time.clock, jitter=lambda: jitter)
            client = real_client(*args, **kwargs)
            self.clients.append(client)
            return client

        monkeypatch.setattr(run_command, "SpotifyClient", client_factory)
        monkeypatch.setattr(
            run_command,
            "RunControl",
            functools.partial(RunControl, clock=self.time.clock, sleep=self.time.sleep),
        )
        # main() installs its own log handler: put the test runner's back afterwards.
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", list(root.handlers))
        monkeypatch.setattr(root, "level", root.level)
        sync_logger = logging.getLogger("sync")
        monkeypatch.setattr(sync_logger, "level", sync_logger.level)

    def env(self, **values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)

    def actions(self) -> str:
        """Pretend to be GitHub Actions with a step summary file; return its path."""
        summary = self.tmp_path / "step_summary.md"
        summary.write_text("")
        self.env(
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY=str(summary),
            GITHUB_SERVER_URL="https://github.example",
            GITHUB_REPOSITORY="someone/spotify-history",
            GITHUB_RUN_ID="4242",
            GITHUB_EVENT_NAME="schedule",
        )
        return str(summary)

    def __call__(self, *argv: str) -> CliResult:
        from sync.cli import main

        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
