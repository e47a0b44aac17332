"""Keep secrets out of every output: GitHub log masks plus a scrubber for our own text."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO


class Redactor:
    """Remembers secret values; masks them in GitHub logs and replaces them in our own text."""

    MIN_LENGTH = 6  # masking very short strings would garble ordinary output

    def __init__(self, github_actions: bool = False, stream: TextIO | None = None):
        self.github_actions = github_actions
        self.stream = stream
        # first MIN_LENGTH characters -> the values starting so: a text is checked against
        # the values that start somewhere in it, not against every secret of the run
        self._by_prefix: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def protect(self, value: str | None) -> None:
        """Register a secret before anything could print it."""
        if not value or len(value) < self.MIN_LENGTH:
            return
        with self._lock:
            same_start = self._by_prefix.setdefault(value[: self.MIN_LENGTH], [])
            if value in same_start:
                return
            same_start.append(value)
            if self.github_actions:
                stream = self.stream or sys.stderr
                stream.write(f"::add-mask::{value}\n")
                stream.flush()

    def redact(self, text: str) -> str:
        """Replace every secret in text by ***, longest first (a run holds thousands)."""
        width = self.MIN_LENGTH
        with self._lock:
            found = {
                value
                for i in range(len(text) - width + 1)
                for value in self._by_prefix.get(text[i : i + width], ())
                if text.startswith(value, i)
            }
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs every record's final message."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
