"""One line of `doctor`: a check's status, what it found, and the fix."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | FAIL | skip
    name: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.status:<5} {self.name}: {self.detail}"
        if self.fix and self.status in (WARN, FAIL):
            text += f" -> fix: {self.fix}"
        return text
