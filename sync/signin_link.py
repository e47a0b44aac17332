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
from datetime import UTC, datetime, timedelta

from sync.config import Settings
from sync.errors import UserError
from sync.spotify.oauth import authorize_url, parse_redirect_uri

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
