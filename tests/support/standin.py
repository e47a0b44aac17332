"""A local stand-in for Spotify's accounts service and Web API, for end-to-end runs.

Serves on 127.0.0.1 only. Used by subprocess tests (latency 0) and by the
benchmark (latency > 0, to model a real network).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from sync.spotify.listener import ACCEPT_TIMEOUT


@dataclass
class StandinState:
    client_id: str = "standin-client"
    client_secret: str = "standin-secret-0123456789"
    latency: float = 0.0
    plays: dict[str, list[dict]] = field(default_factory=dict)  # user -> items, newest first
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    access_tokens: dict[str, str] = field(default_factory=dict)  # access token -> user
    auth_codes: dict[str, str] = field(default_factory=dict)  # code -> user
    # /authorize: who "clicks Agree" (None: nobody is signed in), or the error to send back
    authorize_user: str | None = None
    authorize_error: str | None = None
    redirect_uris: set[str] | None = None  # registered redirect URIs (None: accept any)
    code_redirects: dict[str, str] = field(default_factory=dict)  # code -> its redirect URI
    authorize_requests: list[dict[str, str]] = field(default_factory=list)  # query of each
    rotate: bool = False  # answer refreshes with a new refresh token
    next_link: bool = False  # give full pages a `next` link (which leads to an empty page)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    # hold_user's recently-played request waits (set `held`) until `release` is set: a
    # request in flight, for tests that signal or kill a run meanwhile.
    hold_user: str | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    def issue_access(self, user: str) -> str:
        with self.lock:
            self.counter += 1
            token = f"standin-access-{user}-{self.counter:06d}"
            self.access_tokens[token] = user
        return token


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as Spotify's servers do: HTTP/1.0 made every request a new connection
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out apart: no delayed-ACK stall

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _begin(self) -> StandinState:
        state = self.server.state
        with state.lock:
            state.requests.append((self.command, urlparse(self.path).path))
        if state.latency:
            time.sleep(state.latency)  # models network latency (benchmark only)
        return state

    def do_POST(self) -> None:
        state = self._begin()
        if urlparse(self.path).path != "/api/token":
            return self._send(404, {"error": {"status": 404, "message": "not found"}})
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._send(
                400, {"error": "invalid_client", "error_description": "Invalid client"}
            )
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return self._send(
                200,
                {"access_token": "standin-cc-token", "token_type": "Bearer", "expires_in": 3600},
            )
        if grant == "refresh_token":
            user = state.refresh_tokens.get(form.get("refresh_token", ""))
            if user is None:
                return self._send(
                    400, {"error": "invalid_grant", "error_description": "Refresh token revoked"}
                )
            body = {
                "access_token": state.issue_access(user),
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "user-read-recently-played",
            }
            if state.rotate:
                new = f"standin-refresh-{user}-{state.counter:06d}"
                with state.lock:
                    del state.refresh_tokens[form["refresh_token"]]
                    state.refresh_tokens[new] = user
                body["refresh_token"] = new
            return self._send(200, body)
        if grant == "authorization_code":
            code = form.get("code", "")
            user = state.auth_codes.pop(code, None)
            expected_redirect = state.code_redirects.pop(code, None)
            if expected_redirect is not None and form.get("redirect_uri") != expected_redirect:
                user = None  # Spotify: the redirect_uri must equal the authorize request's
            if user is None:
                return self._send(
                    400,
                    {"error": "invalid_grant", "error_description": "Invalid authorization code"},
                )
            refresh = f"standin-refresh-{user}-login"
            state.refresh_tokens[refresh] = user
            return self._send(
                200,
                {
                    "access_token": state.issue_access(user),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": refresh,
                    "scope": "user-read-recently-played",
                },
            )
        return self._send(400, {"error": "unsupported_grant_type"})

    def _authorize(self, state: StandinState, query: dict[str, str]) -> None:
        """Spotify's consent page, already answered: redirect back with a code or an error."""
        with state.lock:
            state.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != state.client_id:
            return self._send(400, {"error": "INVALID_CLIENT: Invalid client"})
        registered = state.redirect_uris
        if not redirect or (registered is not None and redirect not in registered):
            return self._send(400, {"error": "INVALID_CLIENT: Invalid redirect URI"})
        if query.get("response_type") != "code":
            return self._send(400, {"error": "unsupported_response_type"})
        answer = {"state": query["state"]} if "state" in query else {}
        if state.authorize_error:
            answer = {"error": state.authorize_error, **answer}
        elif state.authorize_user is None:
            return self._send(400, {"error": "nobody is signed in at the stand-in"})
        else:
            with state.lock:
                state.counter += 1
                code = f"standin-code-{state.counter:06d}"
                state.auth_codes[code] = state.authorize_user
                state.code_redirects[code] = redirect
            answer = {"code": code, **answer}
        self.send_response(302)
        self.send_header("Location", f"{redirect}?{urlencode(answer)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        state = self._begin()
        url = urlparse(self.path)
        if url.path == "/authorize":
            return self._authorize(state, {k: v[0] for k, v in parse_qs(url.query).items()})
        auth = self.headers.get("Authorization", "")
        user = state.access_tokens.get(auth.removeprefix("Bearer "))
        if user is None:
            return self._send(401, {"error": {"status": 401, "message": "Invalid access token"}})
        if url.path == "/v1/me":
            return self._send(200, {"id": user, "display_name": user.title()})
        if url.path == "/v1/me/player/recently-played":
            query = parse_qs(url.query)
            limit = int(query.get("limit", ["20"])[0])
            if "before" in query:  # Spotify: nothing is reachable past the 50-play window
                return self._send(200, {"items": [], "next": None, "cursors": None, "limit": limit})
            if user == state.hold_user:
                state.held.set()
                state.release.wait(60)  # bounded: a test that forgets to release still ends
            items = state.plays.get(user, [])[:limit]
            nxt = None
            if state.next_link and len(items) == limit:
                host = f"http://{self.headers['Host']}"
                nxt = f"{host}/v1/me/player/recently-played?before=1&limit={limit}"
            return self._send(200, {"items": items, "next": nxt, "cursors": None, "limit": limit})
        return self._send(404, {"error": {"status": 404, "message": "not found"}})


# serve_forever waits in select(), then accept(); a connection that went away in between
# left accept() blocked, and shutdown() waited for it forever (seen in CI: a 120 s timeout
# in a fixture's teardown). With a timeout accept() gives up, and the loop sees shutdown.
# The product's sign-in listener has the same race and keeps the figure.


def loopback_server(server_class: type[ThreadingHTTPServer], handler: type) -> ThreadingHTTPServer:
    """A server on a free loopback port whose accept() cannot block shutdown()."""
    server = server_class(("127.0.0.1", 0), handler)
    server.socket.settimeout(ACCEPT_TIMEOUT)
    return server


def returns_without_a_connection(server: ThreadingHTTPServer) -> bool:
    """What serve_forever does once select() reports a connection: accept and handle it.
    With nothing to accept (the client went away in between) this must come back."""
    step = threading.Thread(target=server._handle_request_noblock, daemon=True)
    step.start()
    step.join(timeout=5)
    return not step.is_alive()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 dropped connections that 16 workers opened at
    # once, and each dropped one waited a second for the client to retry
    request_queue_size = 128
    state: StandinState


class Standin:
    """Context manager running the stand-in on a free loopback port."""

    def __init__(self, state: StandinState | None = None):
        self.state = state or StandinState()
        self._server = loopback_server(_Server, _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/v1"

    def cli_env(self, db_url: str, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
        """Environment for `python -m sync` pointed at this stand-in and db_url.

        Inherited GITHUB_*/SPOTIFY_*/SYNC_* variables (and any prefixes in `drop`) are removed
        so the developer's own settings never leak into a run.
        """
        prefixes = ("GITHUB_", "SPOTIFY_", "SYNC_", *drop)
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.update(
            DATABASE_URL=db_url,
            SPOTIFY_CLIENT_ID=self.state.client_id,
            SPOTIFY_CLIENT_SECRET=self.state.client_secret,
            SPOTIFY_API_URL=self.api_url,
            SPOTIFY_ACCOUNTS_URL=self.base,
        )
        env.update(extra)  # callers may override any of the above
        return env

    def __enter__(self) -> Standin:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
