"""Scripted people, clocks and constants for `setup` tests and the transcript recorder."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime

import requests

from tests.support.standin import Standin

NOW = datetime(2026, 11, 29, 19, 53, 10, tzinfo=UTC)
CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "fedcba9876543210fedcba9876543210"
DB_PASSWORD = "pw-Quietly-7788"  # the test server trusts everyone: it only has to stay hidden


def with_password(url: str) -> str:
    with_pw = re.sub(r"//postgres:?@", f"//postgres:{DB_PASSWORD}@", url, count=1)
    assert DB_PASSWORD in with_pw, "a test URL the password could not be put into"
    return with_pw


def base_env(standin: Standin, **extra: str) -> dict[str, str]:
    """What setup sees of the environment: no secrets, Spotify pointed at the stand-in."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
    return {**keep, "SPOTIFY_API_URL": standin.api_url, "SPOTIFY_ACCOUNTS_URL": standin.base,
            **extra}  # fmt: skip


class Person:
    """Answers the prompts in order, like someone at the keyboard; opens the sign-in link."""

    def __init__(self, out: io.StringIO, answers: list[tuple[str, str]]):
        self.out = out
        self.answers = list(answers)  # (words the prompt must contain, answer)
        self.prompts: list[str] = []

    def _next(self, prompt: str, echo: bool) -> str:
        self.prompts.append(prompt)
        if "Paste the address" in prompt:  # open the printed link, copy where it lands
            url = re.findall(r"https?://\S+/authorize\?\S+", self.out.getvalue())[-1]
            answer = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
        else:
            assert self.answers, f"unexpected prompt {prompt!r}"
            expected, answer = self.answers.pop(0)
            assert expected in prompt, (expected, prompt)
        self.out.write(prompt + (answer if echo else "") + "\n")
        return answer

    def line(self, prompt: str) -> str:
        return self._next(prompt, echo=True)

    def secret(self, prompt: str) -> str:
        return self._next(prompt, echo=False)


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
