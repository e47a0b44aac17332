"""Every status the job stores or reports, as StrEnums (their values are what the database holds).

Warnings carry a code so that summaries and annotations sort and style them by what
they are, not by looking for words in their text.
"""

from __future__ import annotations

from enum import StrEnum


class UserStatus(StrEnum):
    """user_tokens.status"""

    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the refresh token is dead: sign in again
    REMOVED = "removed"  # taken out of the sync, history kept (sql/004)
    DEMO = "demo"  # made-up history from `python -m sync demo`: no tokens, never synced (sql/008)


SYNCED_STATUSES = (UserStatus.ACTIVE, UserStatus.NEEDS_REAUTH)  # the users a run looks at


class Outcome(StrEnum):
    """What happened to one user in one run (sync_run_users.status)."""

    OK = "ok"
    NEEDS_REAUTH = "needs_reauth"
    FAILED = "failed"
    SKIPPED = "skipped"
    REFUSED = "refused"  # Spotify keeps answering 403: not in the app's User Management list


class RunStatus(StrEnum):
    """sync_runs.status"""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by a signal; partial totals recorded
    KILLED = "killed"  # never finished (SIGKILL, OOM, runner lost); closed by a later run


class WarningCode(StrEnum):
    """Kinds of per-user warnings; the summary groups the ones that need the owner."""

    POSSIBLE_GAP = "possible_gap"  # all 50 plays were new: plays in between may be lost
    TOKEN_EXPIRING = "token_expiring"  # the refresh token's 6 months end soon
    NEEDS_SIGN_IN = "needs_sign_in"  # not synced until the user signs in again
    LOCKED_LONG = "locked_long"  # another run has held this user for hours
    NOT_ALLOWED = "not_allowed"  # Spotify refuses the user (403), again


class AppProblem(StrEnum):
    """Refusals that concern the whole Spotify app, not one user: the run stops at once."""

    INVALID_CLIENT = "invalid_client"  # the client id or secret is wrong
    PREMIUM_LAPSED = "premium_lapsed"  # a development-mode app's owner lost Premium
