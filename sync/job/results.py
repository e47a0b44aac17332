"""What a run reports: one UserResult per user, a RunResult for the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sync.control import BUDGET_REACHED
from sync.statuses import AppProblem, Outcome, WarningCode


@dataclass(frozen=True)
class Note:
    """A per-user warning: a code to sort and style by, a text for people."""

    code: WarningCode
    text: str


@dataclass
class UserResult:
    key: int
    user_id: str
    status: Outcome = Outcome.OK
    new_tracks: int = 0
    fetched: int = 0
    skipped_items: int = 0
    possible_gap: bool = False
    newly_needs_reauth: bool = False
    error_class: str | None = None
    error: str | None = None
    warnings: list[Note] = field(default_factory=list)
    started_at: datetime | None = None
    duration_s: float = 0.0
    # Spotify refused the whole app: this user met the refusal (failed) or was not started
    # because of it (skipped). Reports then say the cause and fix once, for the run.
    app_problem: AppProblem | None = None

    def warn(self, code: WarningCode, text: str) -> None:
        self.warnings.append(Note(code, text))

    @property
    def alarming(self) -> bool:
        """Whether this user makes the run exit 1 (so GitHub e-mails the owner once)."""
        return (
            self.status == Outcome.FAILED
            or self.newly_needs_reauth
            or any(n.code == WarningCode.LOCKED_LONG for n in self.warnings)
        )


@dataclass
class RunResult:
    run_id: int | None
    users: list[UserResult]
    duration_s: float
    dry_run: bool
    stopped: str | None = None  # why the run stopped early (signal, budget, rate limit)
    interrupted: bool = False  # a signal stopped it
    killed_runs: list[tuple[int, datetime]] = field(default_factory=list)  # closed by this run
    app_problem: AppProblem | None = None  # Spotify refused the whole app (the run stopped)

    @property
    def tracks_added(self) -> int:
        return sum(u.new_tracks for u in self.users)

    def count(self, status: Outcome) -> int:
        return sum(1 for u in self.users if u.status == status)

    @property
    def exit_code(self) -> int:
        """130 after a signal; 1 when a user failed, newly needs re-auth or is stuck, the run
        was cut short (e.g. rate-limited) or Spotify refused the whole app; a time budget
        that ran out is routine: 0."""
        if self.interrupted:
            return 130
        cut_short = self.stopped is not None and self.stopped != BUDGET_REACHED
        if cut_short or self.app_problem is not None or any(u.alarming for u in self.users):
            return 1
        return 0

    def totals(self) -> dict[str, int]:
        return {
            "users_total": len(self.users),
            "users_synced": self.count(Outcome.OK),
            "users_failed": self.count(Outcome.FAILED),
            "users_needs_reauth": self.count(Outcome.NEEDS_REAUTH) + self.count(Outcome.REFUSED),
            "users_skipped": self.count(Outcome.SKIPPED),
            "tracks_added": self.tracks_added,
        }
