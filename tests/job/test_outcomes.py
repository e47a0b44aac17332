"""sync.job.outcomes: each error a user's sync can raise, and the outcome it gives, case by
case (the run-level behaviour of each is in test_reliability.py and test_app_refusals.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from sync.control import BUDGET_REACHED, Stopped
from sync.job import outcomes, tokens
from sync.job.outcomes import APP_STOP_REASONS, Verdict, verdict
from sync.spotify.client import (
    AppOwnerNotPremium,
    Forbidden,
    InvalidClient,
    RateLimited,
    TemporaryError,
)
from sync.statuses import AppProblem, Outcome, WarningCode
from sync.store.runs import Candidate

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
PENDING = tokens.PendingTokens(1, "refresh", None, WHEN)  # type: ignore[arg-type]


def user(last_outcome: str | None = None, last_error_class: str | None = None) -> Candidate:
    return Candidate(1, "alice", "active", WHEN, last_outcome, last_error_class, WHEN)


def decide(exc: Exception, who: Candidate | None = None) -> Verdict:
    return verdict(exc, who or user(), lock_timeout="15s")


class NotAllowListed(Forbidden):  # a renamed or narrower 403 is still the same refusal
    pass


CASES = [
    (tokens.TokensNotSaved(PENDING), Verdict(Outcome.FAILED, error_class="TokensNotSaved",
     error="Spotify refreshed the token but the database went away twice before it was saved; "
           "if the next run reports invalid_grant, sign in again")),
    (Stopped(BUDGET_REACHED), Verdict(Outcome.SKIPPED, BUDGET_REACHED)),
    (Stopped("interrupted (SIGTERM)"), Verdict(Outcome.SKIPPED, "interrupted (SIGTERM)")),
    (Stopped(APP_STOP_REASONS[AppProblem.PREMIUM_LAPSED]),
     Verdict(Outcome.SKIPPED, APP_STOP_REASONS[AppProblem.PREMIUM_LAPSED],
             app_problem=AppProblem.PREMIUM_LAPSED)),
    (RateLimited("Spotify asks to wait 3600 s", 3600.0),
     Verdict(Outcome.SKIPPED, "Spotify asks to wait 3600 s")),
    (InvalidClient("invalid_client"), Verdict(Outcome.FAILED, error_class="InvalidClient",
     error="Spotify refuses the app's credentials (invalid_client): check SPOTIFY_CLIENT_ID "
           "and SPOTIFY_CLIENT_SECRET against the app in Spotify's developer dashboard, then "
           "the next run continues", app_problem=AppProblem.INVALID_CLIENT, stops_run=True)),
    (AppOwnerNotPremium("renew Premium"), Verdict(Outcome.FAILED, "renew Premium",
     "AppOwnerNotPremium", AppProblem.PREMIUM_LAPSED, stops_run=True)),
    (tokens.NeedsReauth("invalid_grant"), Verdict(Outcome.NEEDS_REAUTH,
     "Spotify refused the refresh token (invalid_grant); sign in again", "NeedsReauth",
     newly_needs_reauth=True)),
    (tokens.UserChanged("the user was removed during the run"),
     Verdict(Outcome.SKIPPED, "the user was removed during the run")),
    (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
     Verdict(Outcome.SKIPPED, "the database is busy (a lock held longer than 15s: an import "
             "or maintenance); the next run continues")),
    (Forbidden("User not registered in the Developer Dashboard", 403),
     Verdict(Outcome.FAILED, "User not registered in the Developer Dashboard", "Forbidden")),
    (psycopg.errors.AdminShutdown("terminating connection due to administrator command\nmore"),
     Verdict(Outcome.FAILED, "database error: terminating connection due to administrator "
             "command", "AdminShutdown")),
    (TemporaryError("Spotify answered 502 three times"),
     Verdict(Outcome.FAILED, "Spotify answered 502 three times", "TemporaryError")),
    (ValueError(), Verdict(Outcome.FAILED, "ValueError", "ValueError")),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=lambda c: type(c).__name__)
def test_each_error_gives_its_outcome(exc, expected):
    assert decide(exc) == expected


def test_every_row_of_the_table_has_a_case():
    covered = {next(k for k, _ in outcomes.TABLE if isinstance(e, k)) for e, _ in CASES}
    assert covered == {k for k, _ in outcomes.TABLE}


@pytest.mark.parametrize("last", [Outcome.REFUSED, Outcome.FAILED])
def test_a_403_after_a_403_is_a_known_refusal_a_warning(last):
    known = decide(NotAllowListed("User not registered"), user(last, Forbidden.recorded_as))
    assert known == Verdict(Outcome.REFUSED, "User not registered", Forbidden.recorded_as,
                            warning=WarningCode.NOT_ALLOWED)  # fmt: skip


@pytest.mark.parametrize(
    "before",
    [(Outcome.OK, None), (Outcome.FAILED, "TemporaryError"), (Outcome.SKIPPED, "Forbidden"),
     (None, None)],
)  # fmt: skip
def test_a_first_403_fails_the_user(before):
    assert decide(Forbidden("User not registered"), user(*before)).status == Outcome.FAILED


def test_the_refusal_is_decided_from_the_recorded_value_not_the_class_name():
    assert decide(NotAllowListed("x")).error_class == Forbidden.recorded_as
    renamed = decide(Forbidden("x"), user(Outcome.FAILED, "NotAllowListed"))
    assert renamed.status == Outcome.FAILED  # a class name stored once is not the value


def test_the_lock_wait_names_the_timeout_in_force():
    got = verdict(psycopg.errors.LockNotAvailable(), user(), lock_timeout="200ms")
    assert got.error.startswith("the database is busy (a lock held longer than 200ms")


def test_a_long_error_is_cut_to_300_characters():
    assert len(decide(RuntimeError("x" * 1000)).error) == 300
    assert len(decide(psycopg.errors.InternalError_("y" * 1000)).error) == 300
