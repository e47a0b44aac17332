"""The few GitHub REST calls the inbox needs, through one request funnel.

Every call has a deadline and any failure is one typed error, GitHubError: the inbox
is a courtesy, never a reason for the sync to fail. The token is the job's own
GITHUB_TOKEN (permissions: issues: write); nothing here logs a header or a body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)  # connect, read: a hanging API costs a run at most this per call
LABEL = "sync"


class GitHubError(Exception):
    """A call to GitHub's API failed (outage, 403, timeout); the next run tries again."""


@dataclass(frozen=True)
class OpenIssue:
    number: int
    body: str


class GitHubIssues:
    """Issues of one repository. `calls` counts the requests sent (measured in tests)."""

    def __init__(self, api_url: str, repository: str, token: str,
                 session: requests.Session | None = None):  # fmt: skip
        self._base = f"{api_url.rstrip('/')}/repos/{repository}"
        self._session = session or requests.Session()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self.calls = 0

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        self.calls += 1
        try:
            resp = self._session.request(
                method, self._base + path, headers=self._headers, timeout=TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise GitHubError(f"GitHub's API did not answer ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            hint = ""
            if resp.status_code in (401, 403):
                hint = " (does the workflow give the sync job permissions: issues: write?)"
            raise GitHubError(f"GitHub's API answered {resp.status_code} to {method} "
                              f"issues{hint}")  # fmt: skip
        return resp

    def create(self, title: str, body: str) -> int:
        resp = self._request("POST", "/issues",
                             json={"title": title, "body": body, "labels": [LABEL]})  # fmt: skip
        return int(resp.json()["number"])

    def update(self, number: int, title: str, body: str) -> None:
        self._request("PATCH", f"/issues/{number}", json={"title": title, "body": body})

    def close(self, number: int, comment: str) -> None:
        self._request("POST", f"/issues/{number}/comments", json={"body": comment})
        self._request("PATCH", f"/issues/{number}",
                      json={"state": "closed", "state_reason": "completed"})  # fmt: skip

    def open_issues(self) -> list[OpenIssue]:
        """Open issues with our label (first 100: more than the problems that exist)."""
        resp = self._request("GET", "/issues", params={"labels": LABEL, "state": "open",
                                                       "per_page": 100})  # fmt: skip
        return [OpenIssue(int(i["number"]), i.get("body") or "") for i in resp.json()]
