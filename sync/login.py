"""`sync login` (authorization code flow on a loopback redirect) and `sync users remove`.

Login is how a user's refresh token gets into `user_tokens` without a web app: the
owner runs it on a machine with a browser, Spotify redirects back to a one-shot HTTP
server on the loopback redirect URI, and the code is exchanged for tokens. `--headless`
is the same flow with the redirected address pasted back by hand. Nothing here prints
a token; everything that touches the outside world is injectable for tests.
"""

from __future__ import annotations

import argparse
import errno
import hmac
import html
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TextIO
from urllib.parse import parse_qs, urlencode, urlparse

import psycopg

from sync import db, locks, schema, tokens
from sync.config import Settings
from sync.errors import ConfigError, UserError
from sync.report import alias
from sync.spotify import (
    Forbidden,
    InvalidClient,
    InvalidGrant,
    SpotifyClient,
    SpotifyError,
    TemporaryError,
    TokenResponse,
)
from sync.storage import User, resolve_user

log = logging.getLogger(__name__)

# The job reads only recently played tracks; GET /me needs no scope for the user's id.
SCOPES = ("user-read-recently-played",)
CALLBACK_TIMEOUT = 300.0  # seconds to wait for the browser; Spotify's codes live ~10 minutes
STATE_BYTES = 24


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


# -- the one-shot callback server ---------------------------------------------------
_PAGE = (
    "<!doctype html><meta charset=utf-8><title>spotify-history-sync</title>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p></body>"
)


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = 10  # a browser's idle pre-connection must not block the one-shot server

    def log_message(self, *args: object) -> None:  # the query holds the code: never log it
        pass

    def _page(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path.rstrip("/") != self.server.path.rstrip("/"):
            return self._page(404, "Not found", "This is the sign-in callback of sync login.")
        try:
            self.server.code = code_from_query(url.query, self.server.state)
        except LoginFailed as exc:
            self.server.failure = exc
            return self._page(400, "Sign-in failed", f"{exc}. Go back to the terminal.")
        self._page(200, "Signed in", "You can close this tab and go back to the terminal.")


class _CallbackServer(HTTPServer):
    path: str
    state: str
    code: str | None = None
    failure: LoginFailed | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("sign-in callback: a request failed", exc_info=True)  # no traceback dump


class CallbackListener:
    """Listens on the redirect URI's loopback address until one callback arrives."""

    def __init__(self, redirect: Redirect, state: str):
        family = socket.AF_INET6 if ":" in redirect.host else socket.AF_INET
        server_class = type("_Server", (_CallbackServer,), {"address_family": family})
        try:
            self.server: _CallbackServer = server_class(
                (redirect.host, redirect.port), _CallbackHandler
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {redirect.port} on {redirect.host} is in use, so the sign-in answer "
                    "cannot be received: stop the program using it, or set "
                    "SPOTIFY_REDIRECT_URI to another port (and add that URI to your Spotify app)"
                ) from None
            raise UserError(
                f"cannot listen on {redirect.host}:{redirect.port} for the sign-in answer "
                f"({exc.strerror or exc}): use --headless, or another SPOTIFY_REDIRECT_URI"
            ) from None
        self.server.path = redirect.path
        self.server.state = state

    def wait(self, timeout: float, clock: Callable[[], float], poll: float = 0.5) -> str:
        """Serve requests until the callback came or `timeout` seconds passed."""
        deadline = clock() + timeout
        try:
            while self.server.code is None and self.server.failure is None:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise LoginFailed(
                        f"no answer from the browser within {timeout:.0f} s: nothing stored; "
                        "run python -m sync login again (or --headless if the browser runs on "
                        "another machine)"
                    )
                self.server.timeout = min(remaining, poll)
                self.server.handle_request()
        finally:
            self.server.server_close()
        if self.server.failure is not None:
            raise self.server.failure
        assert self.server.code is not None
        return self.server.code

    def close(self) -> None:
        self.server.server_close()


def open_browser(url: str) -> bool:
    """Open the URL in a graphical browser; False when there is none (we print it anyway).

    On Linux without a display, webbrowser would start a text-mode browser inside
    this terminal, where Spotify's page cannot work: don't try.
    """
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("BROWSER")
    ):
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


# -- the flow -------------------------------------------------------------------
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
        raise LoginFailed(
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


def store_login(
    conn: psycopg.Connection,
    user_id: str,
    refresh_token: str,
    access_token: str,
    access_expires_at: datetime,
    scope: str,
    now: datetime,
) -> tuple[int, bool, str | None, str | None]:
    """Create or update the user: new tokens, authorized now, active again.

    Returns (key, created, previous status, previous reason). The caller commits.
    """
    before = conn.execute(
        "select status, status_reason from user_tokens where user_id = %s for update",
        (user_id,),
    ).fetchone()
    row = conn.execute(
        """insert into user_tokens as u (user_id, refresh_token, access_token,
                  access_token_expires_at, scope, authorized_at, status, status_reason,
                  status_changed_at, created_at, updated_at)
           values (%(user)s, %(refresh)s, %(access)s, %(expires)s, %(scope)s, %(now)s,
                   'active', null, %(now)s, %(now)s, %(now)s)
           on conflict (user_id) do update set
                  refresh_token = excluded.refresh_token,
                  access_token = excluded.access_token,
                  access_token_expires_at = excluded.access_token_expires_at,
                  scope = excluded.scope,
                  authorized_at = excluded.authorized_at,
                  status = 'active',
                  status_reason = null,
                  status_changed_at = case when u.status <> 'active'
                                           then excluded.status_changed_at
                                           else u.status_changed_at end,
                  updated_at = excluded.updated_at
           returning id""",
        {
            "user": user_id,
            "refresh": refresh_token,
            "access": access_token,
            "expires": access_expires_at,
            "scope": scope,
            "now": now,
        },
    ).fetchone()
    if before is None:
        return row[0], True, None, None
    return row[0], False, before[0], before[1]


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
    url = db.database_url(settings)
    conn = db.connect(url)
    try:
        applied = schema.migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
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
            key, created, prev_status, prev_reason = store_login(
                conn,
                user_id,
                answer.refresh_token or "",
                answer.access_token,
                now + timedelta(seconds=answer.expires_in),
                scope,
                now,
            )
    finally:
        conn.close()
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


def _database_label(settings: Settings) -> str:
    if settings.database_url is None:
        return f"the embedded database in {settings.data_dir}/"
    try:
        parsed = urlparse(settings.database_url)
        return f"the database at {parsed.hostname}"
    except ValueError:
        return "the DATABASE_URL database"


def cmd_login(args: argparse.Namespace, settings: Settings, io: LoginIO | None = None) -> int:
    io = io or LoginIO()
    result = login(settings, headless=args.headless, io=io)
    name = alias(result.key, result.user_id, False)
    if result.created:
        io.say(f"Signed in as Spotify user {result.user_id}: added as {name} to "
               f"{_database_label(settings)}.")  # fmt: skip
    else:
        was = ""
        if result.previous_status and result.previous_status != "active":
            was = f" It was {result.previous_status}"
            was += f" ({result.previous_reason})" if result.previous_reason else ""
            was += " and is active again."
        io.say(f"Signed in again as Spotify user {result.user_id} ({name}): new refresh token "
               f"stored in {_database_label(settings)}.{was}")  # fmt: skip
    expires = tokens.refresh_token_expires_at(_as_user(result))
    io.say(
        f"Run logs show this user as {name}. Spotify ends this sign-in on {expires:%Y-%m-%d} "
        "(6 months after authorizing): run python -m sync login again before then."
    )
    if result.embedded:
        io.say(
            "Note: DATABASE_URL is not set, so the user is stored on this machine only; "
            "GitHub Actions cannot see it. Put your database's connection string in .env as "
            "DATABASE_URL and run python -m sync login again to sync from Actions."
        )
    return 0


def _as_user(result: LoginResult) -> User:
    return User(result.key, result.user_id, "", None, None, result.scope,
                result.authorized_at, "active", None)  # fmt: skip


# -- users remove -------------------------------------------------------------------
def remove_user(conn: psycopg.Connection, key: int, keep_history: bool) -> int:
    """Delete the user and all their data, or (keep_history) erase tokens and stop syncing.

    Returns the number of plays deleted (0 when kept). One transaction; the caller's.
    Deleting cascades to listening_history, sync_run_users and the analytics tables.
    """
    locked = conn.execute("select pg_try_advisory_xact_lock(%s, %s)", (locks.USER, key)).fetchone()[
        0
    ]
    if not locked:
        raise UserError(
            "a sync run is working on this user right now: try again when it has finished"
        )
    if keep_history:
        conn.execute(
            """update user_tokens
                  set status = 'removed', status_reason = 'removed by the owner; history kept',
                      status_changed_at = now(), refresh_token = null, access_token = null,
                      access_token_expires_at = null, scope = null, updated_at = now()
                where id = %s""",
            (key,),
        )
        return 0
    plays = conn.execute(
        "select count(*) from listening_history where user_id = %s", (key,)
    ).fetchone()[0]
    conn.execute("delete from user_tokens where id = %s", (key,))
    return plays


def cmd_remove_user(
    args: argparse.Namespace,
    settings: Settings,
    read_line: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    url = db.database_url(settings)
    with db.connect(url) as conn:
        schema.migrate(conn)
        user = resolve_user(conn, args.user)
        key, user_id, status = user.key, user.user_id, user.status
        plays = conn.execute(
            "select count(*) from listening_history where user_id = %s", (key,)
        ).fetchone()[0]
        conn.rollback()
        name = alias(key, user_id, settings.show_user_ids)
        who = f"{name} (Spotify user {user_id})" if name != user_id else name
        if args.keep_history:
            if status == "removed":
                say(f"{name} is already removed; its {plays} plays are kept.")
                return 0
            what = (f"Remove {who}: erase its tokens and stop syncing it; its {plays} plays "
                    "and statistics stay.")  # fmt: skip
        else:
            what = (f"Remove {who} and delete its {plays} plays and statistics. "
                    "This cannot be undone.")  # fmt: skip
        if not args.yes:
            say(what)
            try:
                answer = read_line("Type yes to confirm: ")
            except EOFError:
                raise UserError(
                    "no confirmation (stdin is closed): nothing removed; pass --yes to remove "
                    "without asking"
                ) from None
            if answer.strip().lower() not in ("y", "yes"):
                say("Nothing removed.")
                return 1
        with conn.transaction():
            deleted = remove_user(conn, key, args.keep_history)
    if args.keep_history:
        say(f"Removed {name}: tokens erased, no longer synced; {plays} plays kept. "
            "python -m sync login as that account resumes syncing.")  # fmt: skip
    else:
        say(f"Removed {name} and its {deleted} plays.")
    say("The user can also revoke the app's access on Spotify's side: account page > "
        "Manage apps.")  # fmt: skip
    return 0
