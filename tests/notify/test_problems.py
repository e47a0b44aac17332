"""sync.notify.problems, pure: texts that name a rule take it from the rule's one home."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.job.results import RunResult, UserResult
from sync.notify import problems
from sync.notify.problems import Place, Problem, UserFacts
from sync.statuses import Outcome, UserStatus, WarningCode
from sync.store.users import LEASE

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PLACE = Place("https://github.com", "owner/repo", show_ids=False)


def test_the_held_notice_names_the_lease_length(monkeypatch):
    facts = UserFacts(1, "alice", UserStatus.ACTIVE, NOW - timedelta(days=1), Outcome.OK, 0)
    res = UserResult(1, "alice", status=Outcome.SKIPPED)
    res.warn(WarningCode.LOCKED_LONG, "not synced since ...")
    result = RunResult(run_id=None, users=[res], duration_s=1.0, dry_run=False)

    def held(lease: timedelta) -> str:
        monkeypatch.setattr(problems, "LEASE", lease)
        out = problems.desired([facts], result, PLACE, NOW, lambda key: ("", NOW), 1.0)
        return out.present[(Problem.HELD, "user-1")].body

    minutes = int(LEASE.total_seconds() // 60)
    assert f"a dead run's claim ends {minutes} minutes after it died" in held(LEASE)
    assert "claim ends 40 minutes after it died" in held(timedelta(minutes=40))
