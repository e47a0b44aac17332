"""The one-shot HTTP server on the loopback redirect URI that receives Spotify's answer."""

from __future__ import annotations

import errno
import html
import logging
import os
import socket
import sys
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse

from sync.errors import UserError
from sync.spotify.oauth import LoginFailed, Redirect, code_from_query

log = logging.getLogger(__name__)

_PAGE = (
    "<!doctype html><meta charset=utf-8><title>spotify-history-sync</title>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p></body>"
)


ACCEPT_TIMEOUT = 0.5


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
        # select() may say a connection waits that is gone by accept(): without a timeout
        # accept() would then block past the deadline (socketserver returns on the timeout)
        self.server.socket.settimeout(ACCEPT_TIMEOUT)

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
