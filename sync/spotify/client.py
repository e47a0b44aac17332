"""Spotify Web API client: one request funnel with timeouts, retries and typed errors.

Nothing here logs headers, bodies or tokens: errors carry the HTTP status and
Spotify's error code/description only.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

RECENTLY_PLAYED_LIMIT = 50


class SpotifyError(Exception):
    """Any failure talking to Spotify. `temporary` errors may succeed on a later run."""

    temporary = False

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class TemporaryError(SpotifyError):
    """Timeouts, connection errors, 5xx and 429 that outlasted the retries."""

    temporary = True


class RateLimited(TemporaryError):
    """429s longer or more often than the run can wait: limits are per app, the run stops."""

    retry_after: float = 0.0


class InvalidGrant(SpotifyError):
    """The refresh token was revoked or expired: the user must sign in again."""


class InvalidClient(SpotifyError):
    """The app's client id/secret were refused: the owner must fix the secrets."""


class Unauthorized(SpotifyError):
    """401 on a data call: the access token is no longer accepted."""


class Forbidden(SpotifyError):
    """403: missing scope, or the user is not allow-listed on a development-mode app."""


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    refresh_token: str | None
    scope: str | None


class RateGate:
    """Shared pause: limits are per app, so one 429 pauses every worker."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                remaining = self._resume_at - self._clock()
            if remaining <= 0:
                return
            self._sleep(remaining)


def _retry_after(resp: requests.Response, default: float) -> float:
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return default


def _error_fields(resp: requests.Response) -> tuple[str | None, str]:
    """Spotify's error code and description, without echoing anything else of the body."""
    try:
        body = resp.json()
    except ValueError:
        return None, resp.reason or ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):  # Web API: {"error": {"status": 401, "message": "..."}}
        return None, str(err.get("message", ""))[:200]
    if isinstance(err, str):  # accounts: {"error": "invalid_grant", "error_description": "..."}
        return err, str(body.get("error_description", ""))[:200]
    return None, resp.reason or ""


class SpotifyClient:
    def __init__(
        self,
        api_url: str,
        accounts_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        pool_size: int = 4,
        timeout: tuple[float, float] = (5.0, 20.0),
        max_retries: int = 4,
        max_rate_limit_retries: int = 5,
        retry_after_cap: float = 120.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        gate: RateGate | None = None,
        session: requests.Session | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self.accounts_url = accounts_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.retry_after_cap = retry_after_cap
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._jitter = jitter
        self.gate = gate or RateGate(clock=clock, sleep=sleep)
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.requests_made = 0
        self._count_lock = threading.Lock()

    # -- the funnel ---------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, bounded by backoff_cap."""
        return min(self.backoff_cap, self.backoff_base * 2**attempt) * (0.5 + self._jitter() / 2)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Every HTTP call goes through here: rate gate, timeout, retries, typed errors."""
        failures = 0
        rate_limited = 0
        while True:
            self.gate.wait()
            with self._count_lock:
                self.requests_made += 1
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
                if failures >= self.max_retries:
                    raise TemporaryError(f"{kind} talking to Spotify") from None
                delay = self._backoff(failures)
                failures += 1
                log.info("%s talking to Spotify; retry %d in %.1fs", kind, failures, delay)
                self._sleep(delay)
                continue
            if resp.status_code == 429:
                wait = min(_retry_after(resp, 1.0), self.retry_after_cap)
                if rate_limited >= self.max_rate_limit_retries:
                    raise TemporaryError("rate limited by Spotify (429) too often", status=429)
                rate_limited += 1
                log.info("rate limited by Spotify; every worker waits %.1fs", wait)
                self.gate.pause(wait)
                continue
            if resp.status_code >= 500:
                if failures >= self.max_retries:
                    raise TemporaryError(
                        f"Spotify answered {resp.status_code}", status=resp.status_code
                    )
                delay = self._backoff(failures)
                failures += 1
                log.info(
                    "Spotify answered %d; retry %d in %.1fs", resp.status_code, failures, delay
                )
                self._sleep(delay)
                continue
            if resp.status_code >= 400:
                raise self._typed_error(resp)
            return resp

    def _typed_error(self, resp: requests.Response) -> SpotifyError:
        code, description = _error_fields(resp)
        status = resp.status_code
        text = f"Spotify answered {status}" + (f" {code}" if code else "")
        if description:
            text += f": {description}"
        if code == "invalid_grant":
            return InvalidGrant(text, status, code)
        if code in ("invalid_client", "unauthorized_client"):
            return InvalidClient(text, status, code)
        if status == 401:
            return Unauthorized(text, status, code)
        if status == 403:
            return Forbidden(text, status, code)
        return SpotifyError(text, status, code)

    def _json(self, resp: requests.Response) -> dict:
        try:
            body = resp.json()
        except ValueError:
            raise TemporaryError(f"Spotify sent a non-JSON answer ({resp.status_code})") from None
        if not isinstance(body, dict):
            raise TemporaryError("Spotify sent an unexpected answer")
        return body

    # -- accounts -----------------------------------------------------------
    def _token_request(self, form: dict[str, str]) -> TokenResponse:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.client_secret:
            raw = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        else:  # PKCE: no secret, client_id in the body
            form = {**form, "client_id": self.client_id}
        resp = self.request("POST", f"{self.accounts_url}/api/token", data=form, headers=headers)
        body = self._json(resp)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TemporaryError("Spotify's token answer had no access_token")
        try:
            expires_in = int(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600
        new_refresh = body.get("refresh_token")
        return TokenResponse(
            access_token=token,
            expires_in=expires_in,
            refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else None,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        )

    def refresh(self, refresh_token: str, who: str | None = None) -> TokenResponse:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def exchange_code(
        self, code: str, redirect_uri: str, verifier: str | None = None
    ) -> TokenResponse:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            form["code_verifier"] = verifier
        return self._token_request(form)

    def client_credentials(self) -> TokenResponse:
        return self._token_request({"grant_type": "client_credentials"})

    # -- Web API ------------------------------------------------------------
    def get(self, path_or_url: str, access_token: str, params: dict | None = None) -> dict:
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url.lstrip('/')}"
        headers = {"Authorization": f"Bearer {access_token}"}
        return self._json(self.request("GET", url, params=params, headers=headers))

    def paginate(self, path: str, access_token: str, params: dict | None = None) -> Iterator[dict]:
        """Yield pages, following `next`; the caller decides when to stop."""
        page = self.get(path, access_token, params)
        while True:
            yield page
            nxt = page.get("next")
            if not nxt:
                return
            page = self.get(nxt, access_token)

    def recently_played_pages(self, access_token: str, who: str | None = None) -> Iterator[dict]:
        return self.paginate(
            "me/player/recently-played", access_token, {"limit": RECENTLY_PLAYED_LIMIT}
        )

    def me(self, access_token: str) -> dict:
        return self.get("me", access_token)
