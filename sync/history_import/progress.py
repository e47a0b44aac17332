"""A progress line on stderr while a large export imports (only on a terminal)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)


class Progress:
    """A one-line progress bar on stderr; silent when disabled (not a terminal, --no-progress)."""

    def __init__(
        self,
        total_bytes: int,
        total_files: int,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total_bytes = max(1, total_bytes)
        self.total_files = total_files
        self.clock = clock
        self.started = clock()
        self._last = float("-inf")
        self._drawn = False
        self._width = 0  # longest line so far: shorter ones are padded over it

    def update(self, files_done: int, bytes_done: int, plays: int, force: bool = False,
               note: str = "") -> None:  # fmt: skip
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        share = min(1.0, bytes_done / self.total_bytes)
        bar = "#" * int(share * 30)
        line = (f"importing [{bar:<30}] {share:4.0%}  {files_done}/{self.total_files} files  "
                f"{plays:,} plays  {now - self.started:5.1f}s{note and '  ' + note}")  # fmt: skip
        self.stream.write(f"\r{line:<{self._width}}")
        self._width = max(self._width, len(line))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# -- loading, in one transaction -----------------------------------------------------------
