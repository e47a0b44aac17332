"""OAuth pieces of sign-in that need no I/O: the redirect URI, the authorize URL, the code.

Login is how a user's refresh token gets into `user_tokens` without a web app: the
owner signs in, Spotify redirects back with a code, the code is exchanged for tokens.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

from sync.errors import ConfigError, UserError

# The job reads only recently played tracks; GET /me needs no scope for the user's id.
SCOPES = ("user-read-recently-played",)


class LoginFailed(UserError):
    """Sign-in did not complete (declined, timed out, stale answer): nothing was stored."""

    exit_code = 1


# -- redirect URI and the authorize URL (pure) ---------------------------------------
@dataclass(frozen=True)
class Redirect:
    uri: str
    host: str  # the loopback IP literal to listen on (http), or the https host
    port: int
    path: str
    local: bool  # True: a loopback http URI this machine can listen on


def parse_redirect_uri(uri: str) -> Redirect:
    """Check SPOTIFY_REDIRECT_URI the way Spotify does: https, or http on a loopback IP."""
    try:
        parsed = urlparse(uri)
        port = parsed.port
    except ValueError:
        raise ConfigError(
            f"SPOTIFY_REDIRECT_URI {uri!r} is not a URL: use http://127.0.0.1:8888/callback"
        ) from None
    host = (parsed.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise ConfigError(
            "SPOTIFY_REDIRECT_URI uses localhost, which Spotify refuses: use "
            "http://127.0.0.1:8888/callback (or another port) and register exactly that "
            "redirect URI in your Spotify app's settings"
        )
    path = parsed.path or "/"
    if parsed.scheme == "https" and host:
        return Redirect(uri, host, port or 443, path, local=False)
    if parsed.scheme != "http":
        raise ConfigError(
            f"SPOTIFY_REDIRECT_URI {uri!r} must start with http:// (loopback) or https://: "
            "use http://127.0.0.1:8888/callback"
        )
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"SPOTIFY_REDIRECT_URI {uri!r}: Spotify accepts plain http only on a loopback IP "
            "(127.0.0.1 or [::1]): use http://127.0.0.1:8888/callback"
        )
    if port is None:
        raise ConfigError(
            "SPOTIFY_REDIRECT_URI needs a port for the local sign-in server to listen on: "
            "use http://127.0.0.1:8888/callback"
        )
    return Redirect(uri, host, port, path, local=True)


def authorize_url(accounts_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    """Spotify's consent page. show_dialog lets the owner see which account is signing in."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "scope": " ".join(SCOPES),
        "redirect_uri": redirect_uri,
        "state": state,
        "show_dialog": "true",
    }
    return f"{accounts_url.rstrip('/')}/authorize?{urlencode(query)}"


def code_from_query(query: str, state: str) -> str:
    """The authorization code from the redirect's query string, after the state check."""
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    returned = params.get("state", "")
    if not hmac.compare_digest(returned.encode(), state.encode()):
        raise LoginFailed(
            "the answer from Spotify does not carry this sign-in's state (an old browser tab, "
            "or a second login running?): nothing stored; run python -m sync login again"
        )
    error = params.get("error")
    if error == "access_denied":
        raise LoginFailed(
            "access was declined on Spotify's page: nothing stored; run python -m sync login "
            "again and choose Agree"
        )
    if error:
        raise LoginFailed(
            f"Spotify answered the sign-in with error={error[:80]!r}: nothing stored; check "
            "that the app's redirect URIs list SPOTIFY_REDIRECT_URI exactly, then try again"
        )
    code = params.get("code", "")
    if not code:
        raise LoginFailed("the answer from Spotify holds no code: run python -m sync login again")
    return code


def code_from_pasted_url(text: str, redirect: Redirect, state: str) -> str:
    """The code from the redirected address the user pasted (headless mode)."""
    text = text.strip().strip("'\"<>")
    if not text:
        raise LoginFailed("nothing was pasted: run python -m sync login --headless again")
    parsed = urlparse(text)
    if parsed.path.endswith("/authorize"):
        raise LoginFailed(
            "that is the address to open, not the one the browser was sent to afterwards: "
            "paste the address that starts with " + redirect.uri
        )
    if parsed.path.rstrip("/") != redirect.path.rstrip("/") or not parsed.query:
        raise LoginFailed(
            f"that does not look like the redirected address: paste the whole address from "
            f"the browser's address bar; it starts with {redirect.uri}?"
        )
    return code_from_query(parsed.query, state)
