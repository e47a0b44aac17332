"""From the error a user's sync raised to the user's outcome: one table, read top to bottom.

Pure (no database, no clock, no run state), so a unit test covers it case by case
(tests/job/test_outcomes.py); sync.job.pipeline applies the verdict to the user's result
and, for an app-wide refusal, stops the run. Outcomes are decided from typed errors and
stable recorded values (Forbidden.recorded_as), never from a class's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from sync.control import Stopped
from sync.job import tokens
from sync.spotify.client import AppOwnerNotPremium, Forbidden, InvalidClient, RateLimited
from sync.statuses import AppProblem, Outcome, WarningCode
from sync.store.runs import Candidate

# Why the run stopped when Spotify refused the whole app: the reason users not started
# are skipped with (and how a skip is traced back to the app's problem).
APP_STOP_REASONS = {
    AppProblem.INVALID_CLIENT: "Spotify refused the app's credentials",
    AppProblem.PREMIUM_LAPSED: "Spotify stopped the app: its owner's Premium lapsed",
}
APP_STOPPED = {reason: problem for problem, reason in APP_STOP_REASONS.items()}


@dataclass(frozen=True)
class Verdict:
    """What an error makes of a user's result."""

    status: Outcome
    error: str | None = None
    error_class: str | None = None
    app_problem: AppProblem | None = None  # the result is traced to an app-wide refusal
    stops_run: bool = False  # Spotify refused the whole app: stop the run for everyone
    newly_needs_reauth: bool = False
    warning: WarningCode | None = None  # also a warning, the error its text


def describe(exc: BaseException) -> tuple[str, str]:
    """The (error_class, error) a run records for an error; database errors by first line."""
    if isinstance(exc, tokens.NeedsReauth):
        return "NeedsReauth", f"Spotify refused the refresh token ({exc}); sign in again"
    if isinstance(exc, psycopg.Error):
        first = (str(exc).strip().splitlines() or [""])[0]
        return type(exc).__name__, f"database error: {first}"[:300]
    name = getattr(exc, "recorded_as", None) or type(exc).__name__
    return name, (str(exc) or type(exc).__name__)[:300]


def _tokens_not_saved(exc, user, lock_timeout) -> Verdict:
    # Reached only on the second try: the first one saves the pending tokens on a new connection.
    return Verdict(Outcome.FAILED, error_class="TokensNotSaved", error=(
        "Spotify refreshed the token but the database went away twice before it was saved; "
        "if the next run reports invalid_grant, sign in again"))  # fmt: skip


def _stopped(exc, user, lock_timeout) -> Verdict:  # not started: maybe the app is refused
    return Verdict(Outcome.SKIPPED, exc.reason, app_problem=APP_STOPPED.get(exc.reason))


def _skipped(exc, user, lock_timeout) -> Verdict:
    return Verdict(Outcome.SKIPPED, str(exc))


def _invalid_client(exc, user, lock_timeout) -> Verdict:  # wrong for everyone
    error = (f"Spotify refuses the app's credentials ({exc}): check SPOTIFY_CLIENT_ID and "
             "SPOTIFY_CLIENT_SECRET against the app in Spotify's developer dashboard, then the "
             "next run continues")  # fmt: skip
    return Verdict(Outcome.FAILED, error, "InvalidClient", AppProblem.INVALID_CLIENT, True)


def _premium_lapsed(exc, user, lock_timeout) -> Verdict:  # the whole app, not this user
    return Verdict(Outcome.FAILED, str(exc), "AppOwnerNotPremium", AppProblem.PREMIUM_LAPSED, True)


def _needs_reauth(exc, user, lock_timeout) -> Verdict:
    error_class, error = describe(exc)
    return Verdict(Outcome.NEEDS_REAUTH, error, error_class, newly_needs_reauth=True)


def _lock_wait(exc, user, lock_timeout) -> Verdict:
    error = (f"the database is busy (a lock held longer than {lock_timeout}: an import or "
             "maintenance); the next run continues")  # fmt: skip
    return Verdict(Outcome.SKIPPED, error)


def _forbidden(exc, user, lock_timeout) -> Verdict:
    error_class, error = describe(exc)
    if user.last_outcome in (Outcome.REFUSED, Outcome.FAILED) and (
        user.last_error_class == Forbidden.recorded_as
    ):  # known: a warning, not an hourly e-mail
        return Verdict(Outcome.REFUSED, error, error_class, warning=WarningCode.NOT_ALLOWED)
    return Verdict(Outcome.FAILED, error, error_class)


def _failed(exc, user, lock_timeout) -> Verdict:  # fails this user only, never the others
    error_class, error = describe(exc)
    return Verdict(Outcome.FAILED, error, error_class)


Decide = Callable[[Exception, Candidate, str], Verdict]
# The first row whose error type matches decides (order matters: subclasses first).
TABLE: tuple[tuple[type[Exception], Decide], ...] = (
    (tokens.TokensNotSaved, _tokens_not_saved),
    (Stopped, _stopped),  # a signal, the time budget, or an app-wide refusal
    (RateLimited, _skipped),  # per app: the client stopped the run for everyone
    (InvalidClient, _invalid_client),
    (AppOwnerNotPremium, _premium_lapsed),
    (tokens.NeedsReauth, _needs_reauth),
    (tokens.UserChanged, _skipped),  # removed or signed out during the run
    (psycopg.errors.LockNotAvailable, _lock_wait),
    (Forbidden, _forbidden),
    (Exception, _failed),
)


def verdict(exc: Exception, user: Candidate, *, lock_timeout: str) -> Verdict:
    """The outcome `exc` gives `user` (`lock_timeout`: the job's longest lock wait, named in
    the message of a wait that ran out)."""
    decide = next(decide for kind, decide in TABLE if isinstance(exc, kind))
    return decide(exc, user, lock_timeout)
