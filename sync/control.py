"""The run's clock and brakes: one deadline and one stop signal that every wait obeys.

An unattended run must end within its time budget whatever Spotify or the database
do, and a signal (Ctrl-C, GitHub cancelling the job) must wake every sleeping worker.
So nothing in the job calls time.sleep: every wait goes through RunControl.wait, which
returns early when the run is stopped and never sleeps past the deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BUDGET_REACHED = "time budget reached"  # the one stop that is routine, not a problem


class Stopped(Exception):
    """The run was stopped (signal, time budget, an app-wide rate limit); `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RunControl:
    """A deadline on a monotonic clock plus a stop flag, shared by all workers of a run.

    Tests inject `clock` and `sleep` (a fake clock that moves when something sleeps);
    without `sleep`, waits block on an Event so that stop() wakes them at once.
    """

    def __init__(
        self,
        budget_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ):
        self.clock = clock
        self._sleep = sleep
        self.started = clock()
        self.deadline = None if budget_s is None else self.started + budget_s
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason: str | None = None
        self._critical = 0
        self._pending_exit: Callable[[], None] | None = None
        self.in_flight = 0  # users being worked on right now

    # -- work that a hard exit must not cut in half ---------------------------------
    @contextmanager
    def critical(self) -> Iterator[None]:
        """A stretch (e.g. refreshing and saving a rotating token) a hard exit waits for."""
        with self._lock:
            self._critical += 1
        try:
            yield
        finally:
            with self._lock:
                self._critical -= 1
                pending = self._pending_exit if self._critical == 0 else None
            if pending is not None:
                pending()

    def exit_when_safe(self, exit_now: Callable[[], None]) -> bool:
        """Call exit_now at once, or when the last critical stretch ends; True if deferred."""
        with self._lock:
            if self._critical:
                self._pending_exit = exit_now
                return True
        exit_now()
        return False

    @contextmanager
    def working(self) -> Iterator[None]:
        """Count a user as in flight while the block runs."""
        with self._lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- stopping ----------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Stop the run; the first reason given is the one reported."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without a budget."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock())

    def check(self) -> None:
        """Raise Stopped when the run was stopped or its time is up."""
        if self.deadline is not None and self.clock() >= self.deadline:
            self.stop(BUDGET_REACHED)
        if self.stopped:
            raise Stopped(self.reason or "stopped")

    def fits(self, seconds: float) -> bool:
        """Whether a wait of `seconds` ends before the deadline."""
        left = self.remaining()
        return left is None or seconds <= left

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; raise Stopped if the run stops or the deadline comes first."""
        self.check()
        left = self.remaining()
        span = max(0.0, seconds if left is None else min(seconds, left))
        if self._sleep is not None:
            self._sleep(span)
        else:
            self._event.wait(span)
        if left is not None and span < seconds:
            self.stop(BUDGET_REACHED)
        self.check()
