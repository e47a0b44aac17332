"""A local stand-in for the part of GitHub's REST API the owner's inbox uses.

Serves on 127.0.0.1 only: issues (create, edit, close, list by label) and comments,
kept in memory. `fail` holds status codes to answer the next requests with (an outage,
a 403 from a token without issues: write); `calls` records (method, path) of each.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.support.standin import loopback_server

REPO = "someone/spotify-history"
TOKEN = "ghs_standin_token_0123456789"


@dataclass
class Issue:
    number: int
    title: str
    body: str
    labels: list[str]
    state: str = "open"
    comments: list[str] = field(default_factory=list)


@dataclass
class GitHubState:
    issues: dict[int, Issue] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_issues(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.state == "open"]


def _handler(state: GitHubState):
    issues_path = re.compile(rf"^/repos/{REPO}/issues(?:/(\d+))?(/comments)?$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, payload: object = None) -> None:
            data = json.dumps(payload if payload is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            with state.lock:
                state.calls.append((method, url.path))
                if state.fail:
                    self._send(state.fail.pop(0), {"message": "stand-in failure"})
                    return
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"message": "Bad credentials"})
                    return
                match = issues_path.match(url.path)
                if not match:
                    self._send(404, {"message": "Not Found"})
                    return
                number = int(match[1]) if match[1] else None
                if method == "GET" and number is None:
                    wanted = parse_qs(url.query).get("labels", [""])[0]
                    found = [i for i in state.open_issues() if not wanted or wanted in i.labels]
                    self._send(200, [{"number": i.number, "body": i.body} for i in found])
                elif method == "POST" and number is None:
                    n = len(state.issues) + 1
                    state.issues[n] = Issue(n, body["title"], body["body"], body.get("labels", []))
                    self._send(201, {"number": n})
                elif number not in state.issues:
                    self._send(404, {"message": "Not Found"})
                elif method == "POST" and match[2]:
                    state.issues[number].comments.append(body["body"])
                    self._send(201, {"id": len(state.issues[number].comments)})
                elif method == "PATCH":
                    issue = state.issues[number]
                    issue.title = body.get("title", issue.title)
                    issue.body = body.get("body", issue.body)
                    issue.state = body.get("state", issue.state)
                    self._send(200, {"number": number})
                else:
                    self._send(405, {"message": "no"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

    return Handler


class GitHubStandin:
    def __init__(self) -> None:
        self.state = GitHubState()
        self.server = loopback_server(ThreadingHTTPServer, _handler(self.state))
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self, private: bool = False) -> dict[str, str]:
        """The variables a GitHub job has, pointed at this stand-in."""
        return {
            "GITHUB_API_URL": self.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": TOKEN,
            "REPO_PRIVATE": "true" if private else "false",
        }
