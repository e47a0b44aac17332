"""Spotify Web API client: one request funnel with timeouts, retries and typed errors.

Nothing here logs headers, bodies or tokens: errors carry the HTTP status and
Spotify's error code/description only, and log lines name a user by the alias the
caller passes as `who` (user-N), never by Spotify id.

Over 400 lines on purpose: the funnel, its typed errors and the token and Web API calls
that use it are one unit, and splitting them would scatter the retry rules.

Why the retry loop is ours and not urllib3's `Retry` on the adapter: `Retry` sleeps
with time.sleep inside the adapter, where a stop signal cannot wake it, the run's
deadline cannot cut it short and the shared 429 pause cannot hold it; its log lines
cannot name the user; and every attempt keeps the timeout of the first. So only what
no library does is ours: the shared 429 pause, the run deadline and stop (every wait
goes through RunControl.wait), and the rule that a token POST that may have reached
Spotify is never sent twice. Parsing Retry-After is left to urllib3.

What is retried, with exponential backoff and jitter, up to max_retries:
- GET: timeouts, connection errors, 5xx.
- POST (token requests): 5xx (an answer: Spotify reports it did not complete the
  request) and connection failures before anything was sent (connect timeout, refused,
  DNS). Not a read timeout or a dropped connection: Spotify may have processed the
  refresh and rotated the refresh token, so a second one is not sent; the next run
  tries again.
- 429: waits Retry-After through the shared RateGate (limits are per app, so every
  worker pauses); a Retry-After over retry_after_cap or past the deadline, or more
  than max_rate_limit_retries in a row, raises RateLimited and stops the run.
"""

from __future__ import annotations

import base64
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from sync.control import RunControl, Stopped

log = logging.getLogger(__name__)

RECENTLY_PLAYED_LIMIT = 50
TIMEOUT_SLACK = 1.0  # seconds a request may run past the deadline
_RETRY_AFTER = Retry(retry_after_max=sys.float_info.max)  # parses seconds or an HTTP date


class SpotifyError(Exception):
    """Any failure talking to Spotify. `temporary` errors may succeed on a later run."""

    temporary = False
    # What a run stores as the error's class (sync_run_users.error_class) when the next run
    # decides from it; a stable value, so that renaming a class changes no behaviour.
    recorded_as: str | None = None

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class TemporaryError(SpotifyError):
    """Timeouts, connection errors, 5xx and 429 that outlasted the retries."""

    temporary = True


class RateLimited(TemporaryError):
    """429s that cannot be waited out in this run; `retry_after` is Spotify's last ask."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, status=429)
        self.retry_after = retry_after


class InvalidGrant(SpotifyError):
    """The refresh token was revoked or expired: the user must sign in again."""


class InvalidClient(SpotifyError):
    """The app's client id/secret were refused: the owner must fix the secrets."""


class Unauthorized(SpotifyError):
    """401 on a data call: the access token is no longer accepted."""


class AppOwnerNotPremium(SpotifyError):
    """403 for the whole app: a development-mode app's owner no longer has Premium."""


# Spotify's 403 when a development-mode app's owner lost Premium: "Active premium
# subscription required for the owner of the app" (matched case-insensitively, anywhere).
PREMIUM_PHRASE = "premium subscription required for the owner"
PREMIUM_ADVICE = (
    "Spotify refuses the app: its owner's Premium subscription has lapsed (a "
    "development-mode app needs its owner to have Premium); renew Premium on the app "
    "owner's account, then the next run continues"
)


class Forbidden(SpotifyError):
    """403: missing scope, or the user is not allow-listed on a development-mode app."""

    recorded_as = "Forbidden"  # the next run's 403 is then a known refusal, a warning


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(repr=False)
    scope: str | None


class RateGate:
    """Shared pause: limits are per app, so one 429 pauses every worker of the client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def pause(self, until: float) -> None:
        """Hold every request until `until` (on the run's clock)."""
        with self._lock:
            self._resume_at = max(self._resume_at, until)

    def left(self, now: float) -> float:
        """Seconds the pause still lasts at `now`."""
        with self._lock:
            return max(0.0, self._resume_at - now)


def _retry_after(resp: requests.Response, default: float) -> float:
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return default
    try:
        return _RETRY_AFTER.parse_retry_after(raw)
    except Urllib3Error:  # neither seconds nor an HTTP date
        return default


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request surely never reached Spotify (it failed while connecting)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)  # refused, unreachable, DNS


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
    """One client per run, shared by its workers (one session, one RateGate, one control).

    Waits go through `control` (deadline + stop); without one, a control with no deadline
    is built from `clock` and `sleep` (tests inject a fake clock; by default a wait blocks
    on an Event that control.stop() sets).
    """

    def __init__(
        self,
        api_url: str,
        accounts_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        control: RunControl | None = None,
        pool_size: int = 4,
        timeout: tuple[float, float] = (5.0, 20.0),
        max_retries: int = 4,
        max_rate_limit_retries: int = 5,
        retry_after_cap: float = 120.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        gate: RateGate | None = None,
        session: requests.Session | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self.accounts_url = accounts_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.control = control or RunControl(None, clock=clock, sleep=sleep)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.retry_after_cap = retry_after_cap
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._jitter = jitter
        self.gate = gate or RateGate()
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(pool_size, 2))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    # -- waiting ------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, bounded by backoff_cap."""
        return min(self.backoff_cap, self.backoff_base * 2**attempt) * (0.5 + self._jitter() / 2)

    def _wait(self, seconds: float, why: str) -> None:
        """Wait through the control; a wait that would end past the deadline is not begun.

        Raises Stopped when the run is stopped (control.stopped) or when this wait alone
        cannot fit before the deadline (the run goes on: other workers may still finish).
        """
        self.control.check()
        if not self.control.fits(seconds):
            raise Stopped(
                f"time budget reached: {why}, and waiting {seconds:.1f}s would pass the deadline"
            )
        self.control.wait(seconds)

    def _wait_for_gate(self) -> None:
        while (left := self.gate.left(self.control.clock())) > 0:
            self._wait(left, "Spotify rate-limits this app (429)")

    def _timeout(self) -> tuple[float, float]:
        """The configured timeouts, cut to the time left before the deadline (plus slack)."""
        left = self.control.remaining()
        if left is None:
            return self.timeout
        cap = left + TIMEOUT_SLACK
        return (min(self.timeout[0], cap), min(self.timeout[1], cap))

    def _rate_limited(self, wait: float, times: int) -> RateLimited:
        """Stop the run (limits are per app, every user would get 429) and say why."""
        how = f"429, Retry-After {wait:.0f} s" + (f", {times} times in a row" if times > 1 else "")
        message = (
            f"Spotify rate-limits this app ({how}): the remaining users are skipped; "
            "the next run continues"
        )
        self.control.stop(message)
        return RateLimited(message, retry_after=wait)

    # -- the funnel ---------------------------------------------------------
    def request(
        self, method: str, url: str, *, who: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """Every HTTP call goes through here: stop/deadline, rate gate, timeout, retries,
        typed errors. `who` (a user's alias, never a Spotify id) prefixes retry log lines."""
        prefix = f"{who}: " if who else ""
        idempotent = method.upper() in ("GET", "HEAD")
        failures = 0
        rate_limited = 0
        while True:
            self.control.check()
            self._wait_for_gate()
            try:
                resp = self.session.request(method, url, timeout=self._timeout(), **kwargs)
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
                if not idempotent and not _never_sent(exc):
                    raise TemporaryError(
                        f"no answer to the token request ({kind}): Spotify may have rotated "
                        "the refresh token; if the next run reports invalid_grant, sign in "
                        "again (python -m sync login)"
                    ) from None
                if failures >= self.max_retries:
                    raise TemporaryError(f"{kind} talking to Spotify") from None
                delay = self._backoff(failures)
                failures += 1
                log.info(
                    "%s%s talking to Spotify; retry %d in %.1fs", prefix, kind, failures, delay
                )
                self._wait(delay, f"{kind} talking to Spotify")
                continue
            if resp.status_code == 429:
                wait = _retry_after(resp, 1.0)
                rate_limited += 1
                if (
                    wait > self.retry_after_cap
                    or not self.control.fits(wait)
                    or rate_limited > self.max_rate_limit_retries
                ):
                    raise self._rate_limited(wait, rate_limited)
                log.info("%sSpotify answered 429; every worker waits %.1fs", prefix, wait)
                self.gate.pause(self.control.clock() + wait)
                continue
            if resp.status_code >= 500:
                if failures >= self.max_retries:
                    raise TemporaryError(
                        f"Spotify answered {resp.status_code}", status=resp.status_code
                    )
                delay = self._backoff(failures)
                failures += 1
                log.info(
                    "%sSpotify answered %d; retry %d in %.1fs",
                    prefix, resp.status_code, failures, delay,
                )  # fmt: skip
                self._wait(delay, f"Spotify answered {resp.status_code}")
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
        if status == 403 and PREMIUM_PHRASE in f"{code or ''} {description}".lower():
            return AppOwnerNotPremium(PREMIUM_ADVICE, status, code)  # the whole app, not a user
        if status == 403:
            return Forbidden(
                "Spotify refused this user's data (403): a development-mode app only serves "
                "the accounts listed under User Management in its dashboard"
                + (f" (Spotify says: {description})" if description else ""),
                status,
                code,
            )
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
    def _token_request(self, form: dict[str, str], who: str | None = None) -> TokenResponse:
        if not self.client_secret:
            raise InvalidClient("no client secret configured (SPOTIFY_CLIENT_SECRET)")
        raw = f"{self.client_id}:{self.client_secret}".encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(raw).decode(),
        }
        resp = self.request(
            "POST", f"{self.accounts_url}/api/token", who=who, data=form, headers=headers
        )
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

    def refresh(self, refresh_token: str, *, who: str | None = None) -> TokenResponse:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_request(form, who)

    def exchange_code(self, code: str, redirect_uri: str) -> TokenResponse:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return self._token_request(form)

    def client_credentials(self) -> TokenResponse:
        return self._token_request({"grant_type": "client_credentials"})

    # -- Web API ------------------------------------------------------------
    def _on_api(self, url: str) -> bool:
        return url.startswith(self.api_url + "/")

    def get(
        self,
        path_or_url: str,
        access_token: str,
        params: dict | None = None,
        *,
        who: str | None = None,
    ) -> dict:
        """GET a path under the API base URL, or a full URL under it (the bearer token
        goes nowhere else)."""
        url = path_or_url if "://" in path_or_url else f"{self.api_url}/{path_or_url.lstrip('/')}"
        if not self._on_api(url):
            raise ValueError(f"not under the Spotify API base URL: {_no_query(url)}")
        headers = {"Authorization": f"Bearer {access_token}"}
        return self._json(self.request("GET", url, who=who, params=params, headers=headers))

    def paginate(
        self,
        path: str,
        access_token: str,
        params: dict | None = None,
        *,
        who: str | None = None,
    ) -> Iterator[dict]:
        """Yield pages, following `next` while it stays under the API base URL; the caller
        decides when to stop."""
        page = self.get(path, access_token, params, who=who)
        while True:
            yield page
            nxt = page.get("next")
            if not nxt:
                return
            if not isinstance(nxt, str) or not self._on_api(nxt):
                log.warning(
                    "%sSpotify's next link leaves %s (%s): not followed",
                    f"{who}: " if who else "", self.api_url, _no_query(str(nxt)),
                )  # fmt: skip
                return
            page = self.get(nxt, access_token, who=who)

    def recently_played_pages(self, access_token: str, *, who: str | None = None) -> Iterator[dict]:
        return self.paginate(
            "me/player/recently-played", access_token, {"limit": RECENTLY_PLAYED_LIMIT}, who=who
        )

    def me(self, access_token: str) -> dict:
        return self.get("me", access_token)


def _no_query(url: str) -> str:
    """A URL without credentials, query or fragment, fit for a log line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}" if parts.hostname else parts.path
