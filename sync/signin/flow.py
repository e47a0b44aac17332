"""Sign-in (authorization code flow on a loopback redirect, or pasted back by hand).

The owner runs it on a machine with a browser, Spotify redirects back to a one-shot HTTP
server on the loopback redirect URI, and the code is exchanged for tokens. `--headless`
is the same flow with the redirected address pasted back by hand. Nothing here prints
a token; everything that touches the outside world is injectable for tests.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sync import db
from sync.config import Settings
from sync.errors import ConfigError, UserError
from sync.spotify.client import (
    AppOwnerNotPremium,
    Forbidden,
    InvalidClient,
    InvalidGrant,
    SpotifyClient,
    SpotifyError,
    TemporaryError,
    TokenResponse,
)
from sync.spotify.listener import CallbackListener, open_browser
from sync.spotify.oauth import (
    SCOPES,
    LoginFailed,
    Redirect,
    authorize_url,
    code_from_pasted_url,
    parse_redirect_uri,
)
from sync.store import users as user_store

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT = 300.0  # seconds to wait for the browser; Spotify's codes live ~10 minutes
STATE_BYTES = 24


@dataclass
class LoginIO:
    """Everything login needs from the outside world, replaceable in tests."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    read_line: Callable[[str], str] = input
    open_browser: Callable[[str], bool] = open_browser
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock: Callable[[], float] = time.monotonic
    new_state: Callable[[], str] = lambda: secrets.token_urlsafe(STATE_BYTES)
    timeout: float = CALLBACK_TIMEOUT
    poll: float = 0.5

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()


class CodeRefused(LoginFailed):
    """Spotify answered the code exchange with invalid_grant (a used or stale code)."""


@dataclass(frozen=True)
class LoginResult:
    key: int
    user_id: str
    created: bool
    previous_status: str | None  # None for a new user
    previous_reason: str | None
    scope: str
    authorized_at: datetime
    embedded: bool  # stored in the embedded database (DATABASE_URL unset)


def _exchange(client: SpotifyClient, code: str, redirect_uri: str) -> TokenResponse:
    try:
        answer = client.exchange_code(code, redirect_uri)
    except InvalidClient as exc:
        raise ConfigError(
            f"Spotify refused the app's credentials ({exc}): check SPOTIFY_CLIENT_ID and "
            "SPOTIFY_CLIENT_SECRET against the app's settings in the developer dashboard"
        ) from None
    except InvalidGrant as exc:
        raise CodeRefused(
            f"Spotify refused the sign-in code ({exc}): codes are single-use and expire after "
            "a few minutes; run python -m sync login again"
        ) from None
    except TemporaryError as exc:
        raise LoginFailed(f"could not reach Spotify ({exc}): try again in a minute") from None
    except SpotifyError as exc:
        raise LoginFailed(f"the code exchange failed ({exc}): nothing stored") from None
    if not answer.refresh_token:
        raise LoginFailed("Spotify's answer held no refresh token: nothing stored; try again")
    return answer


def _profile_id(client: SpotifyClient, access_token: str) -> str:
    try:
        profile = client.me(access_token)
    except AppOwnerNotPremium:  # the whole app is refused, not this account
        raise LoginFailed(
            "Spotify refuses the app: its owner's Premium subscription has lapsed (a "
            "development-mode app needs its owner to have Premium); renew Premium on the app "
            "owner's account, then sign in again (nothing stored)"
        ) from None
    except Forbidden:
        raise LoginFailed(
            "Spotify refused to show this account (403): a development-mode app only serves "
            "the accounts listed under User Management in its dashboard (5 for new apps), "
            "and its owner needs Premium; add this account there, then sign in again"
        ) from None
    except TemporaryError as exc:
        raise LoginFailed(f"could not reach Spotify ({exc}): try again in a minute") from None
    except SpotifyError as exc:
        raise LoginFailed(f"could not read the Spotify profile ({exc}): nothing stored") from None
    user_id = profile.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise LoginFailed("Spotify's profile answer had no user id: nothing stored; try again")
    return user_id


def login(
    settings: Settings,
    *,
    headless: bool = False,
    io: LoginIO | None = None,
    client: SpotifyClient | None = None,
) -> LoginResult:
    """Run the whole sign-in and store the user; raise UserError when it cannot complete."""
    io = io or LoginIO()
    settings.require_spotify_credentials()
    redirect = parse_redirect_uri(settings.redirect_uri)
    if not headless and not redirect.local:
        io.say(f"{redirect.uri} is not on this machine, so paste the redirected address back.")
        headless = True

    # The database first: a code is worth only minutes, so fail before the browser step.
    with db.open_database(settings) as conn:
        client = client or SpotifyClient(
            settings.api_url,
            settings.accounts_url,
            settings.client_id or "",
            settings.client_secret,
            max_retries=2,
        )
        state = io.new_state()
        auth_url = authorize_url(settings.accounts_url, settings.client_id or "", redirect.uri,
                                 state)  # fmt: skip
        code = _headless_code(io, redirect, state, auth_url) if headless else (
            _browser_code(io, redirect, state, auth_url))  # fmt: skip

        answer = _exchange(client, code, redirect.uri)
        user_id = _profile_id(client, answer.access_token)
        now = io.now()
        scope = answer.scope or " ".join(SCOPES)
        with conn.transaction():
            key, created, prev_status, prev_reason = store_answer(conn, user_id, answer, now)
    return LoginResult(
        key=key,
        user_id=user_id,
        created=created,
        previous_status=prev_status,
        previous_reason=prev_reason,
        scope=scope,
        authorized_at=now,
        embedded=settings.database_url is None,
    )


def store_answer(conn, user_id: str, answer: TokenResponse, now: datetime) -> tuple:
    """Store a sign-in's tokens (in the caller's transaction): store_login's answer."""
    return user_store.store_login(
        conn,
        user_id,
        answer.refresh_token or "",
        answer.access_token,
        now + timedelta(seconds=answer.expires_in),
        answer.scope or " ".join(SCOPES),
        now,
    )


def _browser_code(io: LoginIO, redirect: Redirect, state: str, auth_url: str) -> str:
    listener = CallbackListener(redirect, state)  # bind first: a busy port fails early
    try:
        opened = io.open_browser(auth_url)
        io.say(
            "Sign in with Spotify in the browser window that just opened."
            if opened
            else "Open this address in a browser on this machine and sign in with Spotify:"
        )
        io.say(f"  {auth_url}")
        io.say(
            f"Waiting for Spotify to send the browser back to {redirect.uri} "
            f"(up to {io.timeout / 60:.0f} min). Browser on another machine? Stop here "
            "(Ctrl-C) and run python -m sync login --headless."
        )
    except BaseException:
        listener.close()
        raise
    return listener.wait(io.timeout, io.clock, io.poll)


def _headless_code(io: LoginIO, redirect: Redirect, state: str, auth_url: str) -> str:
    io.say("Open this address in any browser and sign in with Spotify:")
    io.say(f"  {auth_url}")
    io.say(
        f"Spotify then sends the browser to {redirect.uri}?code=... ; on another machine that "
        "page fails to load, which is fine. Copy the whole address from the address bar."
    )
    try:
        pasted = io.read_line("Paste the address here: ")
    except EOFError:
        raise UserError(
            "no address was pasted (stdin closed): run python -m sync login --headless in a "
            "terminal"
        ) from None
    return code_from_pasted_url(pasted, redirect, state)
