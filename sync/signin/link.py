"""Sign-in links: Spotify's consent page, bound to one stored user (or a new person).

A link is the usual authorize URL with a `state` that the app can check later without
storing anything: it names the subject (a user_tokens key, or "new"), an expiry, and an
HMAC-SHA256 over version, client id, subject and expiry, keyed by a key derived from
the client secret. Whoever completes the sign-in pastes the redirected address back
(`python -m sync login --redirect-url`, or the workflow's `sign_in` input); the state
then says whom the code is for and that this app made the link, and that it is still
valid.

State text: ``v1.<app>.<subject|new>.<expiry-unix>.<mac>`` (URL-safe, no padding), where
<app> is a short fingerprint of the client id, there only to tell "made for another
app" apart from "tampered with". Links stay the same text for days: they expire at the
end of the 15-day period (aligned on the Unix epoch) after the current one, so a link
is valid for 15 to 30 days.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

from sync.config import Settings
from sync.errors import UserError
from sync.spotify.client import SpotifyClient
from sync.spotify.oauth import LoginFailed, authorize_url, parse_redirect_uri
from sync.statuses import UserStatus
from sync.store import users as user_store

VERSION = "v1"
PERIOD = timedelta(days=15)
NEW = "new"
_KEY_LABEL = b"spotify-history-sync sign-in state v1"
_APP_LABEL = b"spotify-history-sync sign-in app v1\n"
_STATE = re.compile(
    r"^v1\.([A-Za-z0-9_-]{8})\.(new|[1-9][0-9]{0,17})\.([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})$"
)


class LinkRefused(UserError):
    """A sign-in link's state (or the address it came back on) is not acceptable: exit 2."""

    exit_code = 2


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _credentials(settings: Settings) -> tuple[str, str]:
    settings.require_spotify_credentials()
    return settings.client_id or "", settings.client_secret or ""


def _app_tag(client_id: str) -> str:
    return _b64(hashlib.sha256(_APP_LABEL + client_id.encode()).digest())[:8]


def _mac(client_secret: str, client_id: str, subject: str, expiry: int) -> str:
    key = hmac.new(client_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
    message = "\n".join((VERSION, client_id, subject, str(expiry))).encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def _unix(now: datetime) -> int:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp())


def link_expiry(now: datetime) -> datetime:
    """The end of the 15-day period after the current one (periods start at the epoch)."""
    period = int(PERIOD.total_seconds())
    current = _unix(now) // period
    return datetime.fromtimestamp((current + 2) * period, UTC)


def make_state(settings: Settings, subject: int | None, now: datetime) -> tuple[str, datetime]:
    """The signed state for subject (a user key, None for a new person) and its expiry."""
    if subject is not None and (isinstance(subject, bool) or subject < 1):
        raise ValueError(f"a sign-in link's subject is a user key (>= 1), not {subject!r}")
    client_id, client_secret = _credentials(settings)
    expires_at = link_expiry(now)
    expiry = _unix(expires_at)
    who = NEW if subject is None else str(subject)
    mac = _mac(client_secret, client_id, who, expiry)
    return f"{VERSION}.{_app_tag(client_id)}.{who}.{expiry}.{mac}", expires_at


def sign_in_link(settings: Settings, subject: int | None, now: datetime) -> tuple[str, datetime]:
    """Spotify's authorize URL for subject (user key, None = a new person) and its expiry.

    The text is the same for every `now` within one 15-day period, so callers can
    compare it to decide whether anything changed.
    """
    state, expires_at = make_state(settings, subject, now)
    redirect = parse_redirect_uri(settings.redirect_uri)
    url = authorize_url(settings.accounts_url, settings.client_id or "", redirect.uri, state)
    return url, expires_at


def check_state(settings: Settings, state: str, now: datetime) -> int | None:
    """The subject a state names (None = a new person), or LinkRefused with the reason."""
    client_id, client_secret = _credentials(settings)
    match = _STATE.match(state.strip())
    if match is None:
        raise LinkRefused(
            "the address's state is not one of this app's sign-in links (malformed): "
            "make a new link with python -m sync login --link USER"
        )
    app, who, expiry_text, mac = match.groups()
    if not hmac.compare_digest(app, _app_tag(client_id)):
        raise LinkRefused(
            "this sign-in link was made for another app (another SPOTIFY_CLIENT_ID): "
            "make a new link with python -m sync login --link USER"
        )
    expiry = int(expiry_text)
    if not hmac.compare_digest(mac, _mac(client_secret, client_id, who, expiry)):
        raise LinkRefused(
            "this sign-in link's signature does not match (it was altered, or made with "
            "another client secret): nothing stored; make a new link with "
            "python -m sync login --link USER"
        )
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if _unix(now) >= expiry:
        raise LinkRefused(
            f"this sign-in link expired on {expires_at:%Y-%m-%d %H:%M} UTC: make a new one "
            "with python -m sync login --link USER"
        )
    return None if who == NEW else int(who)


# -- redeeming: the address Spotify sent the browser to ------------------------------
@dataclass(frozen=True)
class Redeemed:
    key: int
    user_id: str
    created: bool
    previous_status: str | None  # None for a new user
    authorized_at: datetime


def _clean(text: str) -> str:
    return text.strip().strip("'\"<>").strip()


def _query_params(text: str) -> dict[str, str] | None:
    """The query parameters of a pasted address, or None when it is not an http(s) URL."""
    try:
        parsed = urlparse(text)
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    return {k: v[0] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}


def mask_address(text: str, say: Callable[[str], None]) -> None:
    """In GitHub Actions: mask the pasted address and its code before anything prints.

    The raw value is masked even when it does not parse as a URL.
    """
    values = [text.strip(), _clean(text)]
    params = _query_params(_clean(text)) or {}
    values.append(params.get("code", ""))
    seen: set[str] = set()
    for value in values:
        if value and value not in seen and "\n" not in value:
            seen.add(value)
            say(f"::add-mask::{value}")


def _exchange_redirect(text: str) -> tuple[str, str, int | None]:
    """(code, the redirect URI the browser landed on, the state's subject): checks only."""
    if not text:
        raise LinkRefused(
            "no address was given: paste the whole address the browser was sent to after "
            "Agree (it starts with http://127.0.0.1:8888/callback?)"
        )
    params = _query_params(text)
    if params is None:
        raise LinkRefused(
            "that is not a URL: paste the whole address from the browser's address bar "
            "after Agree (it starts with http://127.0.0.1:8888/callback?code=)"
        )
    parsed = urlparse(text)
    if parsed.path.rstrip("/").endswith("/authorize"):
        raise LinkRefused(
            "that is the sign-in link itself: open it, choose Agree, then paste the address "
            "the browser is sent to afterwards"
        )
    error = params.get("error")
    if error == "access_denied":
        raise LinkRefused(
            "the sign-in was declined on Spotify's page: nothing stored; open the link again "
            "and choose Agree"
        )
    if error:
        raise LinkRefused(
            f"Spotify answered the sign-in with error={error[:80]!r}: nothing stored; check "
            "that the app's redirect URIs list SPOTIFY_REDIRECT_URI exactly"
        )
    code = params.get("code", "")
    if not code:
        raise LinkRefused(
            "the address holds no code: paste the whole address the browser was sent to "
            "after Agree, from the address bar"
        )
    redirect_uri = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
    try:
        parse_redirect_uri(redirect_uri)
    except UserError:
        raise LinkRefused(
            "that is not an address Spotify sends the browser to after a sign-in: paste the "
            "one that starts with http://127.0.0.1:8888/callback?"
        ) from None
    return code, redirect_uri, params.get("state", "")


def _check_subject_row(conn, key: int, lock: bool) -> tuple[str, str]:
    row = user_store.sign_in_subject(conn, key, lock)
    if row is None:
        raise LinkRefused(
            f"this sign-in link is for user-{key}, who is no longer stored: nothing stored; "
            "for a new person make a link with python -m sync login --link new"
        )
    if row[1] == UserStatus.REMOVED:
        raise LinkRefused(
            f"this sign-in link is for user-{key}, who was removed: nothing stored; to sign "
            "them in again make a link with python -m sync login --link new"
        )
    return row[0], row[1]


def _lock_account(conn, user_id: str, now: datetime) -> None:
    """In the caller's transaction: serialize sign-ins of this account; refuse an older one.

    A transaction-level advisory lock (it works through transaction poolers) serializes
    two overlapping sign-ins of the same account, new rows included, and the row lock
    keeps everything else out until the commit. A sign-in authorized before the stored
    active one is refused, so a slower overlapping sign-in never puts back an older
    refresh token. Runs need no more: their token writes are compare-and-set on the
    refresh token they used (sync.job.tokens, users.save_tokens / mark_needs_reauth),
    so once this commits they can no longer write an older token or status.
    """
    row = user_store.lock_sign_in(conn, user_id)
    if row is not None and row[0] == UserStatus.ACTIVE and row[1] is not None and row[1] > now:
        raise LoginFailed(
            f"a newer sign-in of this account was stored meanwhile (at {row[1]:%Y-%m-%d %H:%M} "
            "UTC, an overlapping sign-in): kept that one, nothing changed"
        )


def redeem(
    settings: Settings,
    text: str,
    now: datetime,
    client: SpotifyClient | None = None,
) -> Redeemed:
    """Check the redirected address of a sign-in link, exchange its code, store the user.

    Raises LinkRefused (exit 2, nothing stored) for bad input: not a URL, declined, no
    code, a state that is malformed, expired, another app's or altered, a used code, or
    a signed-in account other than the user the link names.
    """
    from sync import db
    from sync.signin.flow import CodeRefused, _exchange, _profile_id, store_answer

    settings.require_spotify_credentials()
    code, redirect_uri, state = _exchange_redirect(_clean(text))
    if not state:
        raise LinkRefused(
            "the address holds no state, so it did not come from a sign-in link: make one "
            "with python -m sync login --link USER"
        )
    subject = check_state(settings, state, now)
    # The database first: a code is worth only minutes, so fail before using it.
    with db.open_database(settings) as conn:
        if subject is not None:
            expected_user, _ = _check_subject_row(conn, subject, lock=False)
        client = client or SpotifyClient(
            settings.api_url,
            settings.accounts_url,
            settings.client_id or "",
            settings.client_secret,
            max_retries=2,
        )
        try:
            answer = _exchange(client, code, redirect_uri)
        except CodeRefused:
            raise LinkRefused(
                "Spotify refused the code: each address works once, within a few minutes; "
                "nothing stored; open the sign-in link again and paste the new address"
            ) from None
        user_id = _profile_id(client, answer.access_token)
        if subject is not None and user_id != expected_user:
            raise LinkRefused(
                f"this sign-in link is for user-{subject}, but another Spotify account signed "
                f"in: nothing stored; open the link again and sign in with user-{subject}'s "
                "account (log out of Spotify in that browser first)"
            )
        with conn.transaction():
            _lock_account(conn, user_id, now)
            if subject is not None:  # under the row lock: still the same user, still there
                locked_user, _ = _check_subject_row(conn, subject, lock=True)
                if locked_user != user_id:
                    raise LinkRefused(
                        f"user-{subject} changed while signing in: nothing stored; try again"
                    )
            key, created, previous_status, _ = store_answer(conn, user_id, answer, now)
    return Redeemed(key, user_id, created, previous_status, now)
