"""Which problems need the owner now: a pure function from stored facts to issue texts.

Each problem has a key (kind, subject). The answer says, per key, that the problem is
present (with the issue's title and body), or nothing about it when this run cannot
tell (`unknown`: e.g. the app's credentials when no user got that far); every other
key is over, and its issue is closed. Texts follow the summaries' privacy rule: users
appear by alias unless the repository is private and the owner shows ids; never a
token, a code, a display name or a track.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sync.job.results import RunResult, UserResult
from sync.job.tokens import refresh_token_expires_at
from sync.names import alias
from sync.statuses import AppProblem, Outcome, UserStatus, WarningCode
from sync.store.users import LEASE
from sync.store.users import REFRESH_TOKEN_LIFETIME_MONTHS as MONTHS

SIGN_IN_NOTICE = timedelta(days=14)  # open the sign-in issue this long before the end
GAP_RUNS = 24  # look at a user's last this many synced runs ...
GAP_THRESHOLD = 3  # ... and open an issue when this many saw a possible gap
SCHEDULE_WARN_DAYS = 45  # public repositories: scheduled runs stop after 60 idle days
SCHEDULE_STOP_DAYS = 60
APP = "app"


class Problem(StrEnum):
    """owner_notices.problem (sql/007 checks the same list)."""

    SIGN_IN = "sign_in"  # ends within 14 days, has ended, or Spotify refused the token
    REFUSED = "refused"  # Spotify answered 403 twice in a row
    INVALID_CLIENT = "invalid_client"  # the app's client id or secret refused
    PREMIUM_LAPSED = "premium_lapsed"  # the app owner's Premium lapsed
    GAPS = "gaps"  # possible gaps in 3 of the last 24 runs
    HELD = "held"  # a dead run has held the user for hours
    SCHEDULE = "schedule"  # GitHub is about to disable the scheduled workflow


Key = tuple[Problem, str]


def subject(user_key: int) -> str:
    return f"user-{user_key}"


@dataclass(frozen=True)
class UserFacts:
    """What the database says about one user (sync.store.notices.user_facts)."""

    key: int
    user_id: str
    status: str
    authorized_at: datetime
    last_outcome: str | None  # latest attempt that was not a skip
    gap_runs: int  # of the last GAP_RUNS synced runs, how many saw a possible gap


@dataclass(frozen=True)
class Notice:
    title: str
    body: str


@dataclass
class Desired:
    present: dict[Key, Notice] = field(default_factory=dict)
    unknown: set[Key] = field(default_factory=set)


@dataclass(frozen=True)
class Place:
    """Where the owner acts: the repository's pages, and how names are shown."""

    server_url: str  # https://github.com
    repository: str  # owner/name
    show_ids: bool  # private repository and SYNC_SHOW_USER_IDS=true

    @property
    def run_form(self) -> str:
        return f"{self.server_url}/{self.repository}/actions/workflows/sync.yml"

    @property
    def secrets_page(self) -> str:
        return f"{self.server_url}/{self.repository}/settings/secrets/actions"


def marker(key: Key) -> str:
    """A hidden line in the body that finds the issue again if its number was lost."""
    return f"<!-- spotify-history-sync notice: {key[0]}/{key[1]} -->"


def _body(key: Key, *paragraphs: str) -> str:
    return "\n\n".join([*paragraphs, marker(key)]) + "\n"


def _sign_in_steps(place: Place, link: str, link_expires: datetime) -> str:
    return (
        f"**To sign in again from any device** (a phone is fine):\n\n"
        f"1. Open this sign-in link (valid until {link_expires:%Y-%m-%d}) and agree: "
        f"[sign in with Spotify]({link})\n"
        "2. Your browser then lands on `http://127.0.0.1:8888/callback?code=...`, a page that "
        "does not load. That is expected. Copy that whole address from the address bar.\n"
        f"3. Open [Run workflow]({place.run_form}) (Actions > sync > Run workflow), paste the "
        "address into **sign_in** and run it. Or: "
        "`gh workflow run sync.yml -f sign_in=ADDRESS`.\n\n"
        "The run checks the address, stores the new sign-in, syncs and closes this issue. "
        "Sign in with the same Spotify account as before; another account is refused. "
        "On a computer with the clone, `python -m sync login` does the same."
    )


def desired(
    users: Sequence[UserFacts],
    result: RunResult | None,
    place: Place,
    now: datetime,
    link: Callable[[int], tuple[str, datetime]],
    days_since_activity: float | None,
) -> Desired:
    """The problems present now; `link(user_key)` gives a sign-in link and its expiry."""
    out = Desired()
    by_key = {u.key: u for u in (result.users if result else [])}
    for u in users:
        name = alias(u.key, u.user_id, place.show_ids)
        _sign_in(out, u, name, place, now, link)
        _refused(out, u, name)
        _gaps(out, u, name)
        _held(out, u, name, by_key.get(u.key))
    _app(out, result, place)
    _schedule(out, now, days_since_activity)
    return out


def _sign_in(
    out: Desired,
    u: UserFacts,
    name: str,
    place: Place,
    now: datetime,
    link: Callable[[int], tuple[str, datetime]],
) -> None:
    """Spotify refused the sign-in, or it ends within SIGN_IN_NOTICE (or has ended)."""
    ends = refresh_token_expires_at(u.authorized_at)
    key = (Problem.SIGN_IN, subject(u.key))
    if u.status == UserStatus.NEEDS_REAUTH or (
        u.status == UserStatus.ACTIVE and ends - now <= SIGN_IN_NOTICE
    ):
        url, until = link(u.key)
        if u.status == UserStatus.NEEDS_REAUTH or ends <= now:
            title = f"{name} needs to sign in with Spotify again"
            why = (f"Spotify no longer accepts {name}'s sign-in (it ended on "
                   f"{ends:%Y-%m-%d}, {MONTHS} months after signing in, or access was removed), "
                   "so their plays are not synced. Spotify keeps only the last 50 plays: "
                   "sign in soon.")  # fmt: skip
        else:
            title = f"{name}'s Spotify sign-in ends on {ends:%Y-%m-%d}"
            why = (f"Spotify ends every sign-in {MONTHS} months after it was given: {name}'s ends "
                   f"on {ends:%Y-%m-%d}. After that their plays are not synced until they "
                   f"sign in again; doing it now starts a new {MONTHS} months.")  # fmt: skip
        out.present[key] = Notice(title, _body(key, why, _sign_in_steps(place, url, until)))


def _refused(out: Desired, u: UserFacts, name: str) -> None:
    key = (Problem.REFUSED, subject(u.key))
    if u.status == UserStatus.ACTIVE and u.last_outcome == Outcome.REFUSED:
        out.present[key] = Notice(
            f"Spotify refuses {name}'s data",
            _body(key, f"Spotify answered 403 for {name} in two runs in a row, so their "
                  "plays are not synced. A development-mode app serves only the accounts "
                  "listed under **User Management** in the app's Spotify developer dashboard "
                  "(5 at most): add this account's e-mail there. This issue closes by itself "
                  "after the next run that syncs them."),
        )  # fmt: skip


def _gaps(out: Desired, u: UserFacts, name: str) -> None:
    key = (Problem.GAPS, subject(u.key))
    if u.gap_runs >= GAP_THRESHOLD:
        out.present[key] = Notice(
            f"{name} may be losing plays",
            _body(key, f"In {u.gap_runs} of {name}'s last {GAP_RUNS} synced runs, all 50 "
                  "plays Spotify keeps were new, so plays between two runs may be lost: "
                  "Spotify shows only the last 50. Two fixes: run more often (a shorter "
                  "`cron` in `.github/workflows/sync.yml`, e.g. `*/30 * * * *`), and fill "
                  "what was lost from Spotify's data export (`python -m sync import`, "
                  "docs/import.md). Closes by itself when fewer runs see a gap."),
        )  # fmt: skip


def _held(out: Desired, u: UserFacts, name: str, res: UserResult | None) -> None:
    """Held by a dead run: known only from this run's result (unknown when it did not sync)."""
    key = (Problem.HELD, subject(u.key))
    if res is not None and any(n.code == WarningCode.LOCKED_LONG for n in res.warnings):
        out.present[key] = Notice(
            f"{name} is held by a run that does not finish",
            _body(key, f"{name} has not been synced for hours: another run keeps its claim. "
                  "Look under Actions for a run that is still going (or a sync on another "
                  f"machine) and stop it; a dead run's claim ends {_minutes(LEASE)} minutes after "
                  "it died."),
        )  # fmt: skip
    elif res is None or res.status != Outcome.OK:
        out.unknown.add(key)


def _minutes(length: timedelta) -> int:
    return int(length.total_seconds() // 60)


def _schedule(out: Desired, now: datetime, days_since_activity: float | None) -> None:
    """GitHub is about to disable the schedule of a repository without activity."""
    key = (Problem.SCHEDULE, APP)
    if days_since_activity is None:
        out.unknown.add(key)
    elif days_since_activity >= SCHEDULE_WARN_DAYS:
        stop = now + timedelta(days=SCHEDULE_STOP_DAYS - days_since_activity)
        out.present[key] = Notice(
            f"Scheduled syncs stop around {stop:%Y-%m-%d}",
            _body(key, "GitHub disables the scheduled workflows of a public repository after 60 "
                  f"days without activity; this one has had none for {int(days_since_activity)} "
                  f"days, so the hourly sync stops around {stop:%Y-%m-%d}. To keep it: push any "
                  "commit (e.g. edit the README on GitHub), or click **Continue running "
                  "workflow** in GitHub's e-mail. Once stopped: Actions > sync > **Enable "
                  "workflow**."),
        )  # fmt: skip


def _app(out: Desired, result: RunResult | None, place: Place) -> None:
    """App-wide refusals: present when this run met one, over once any user synced."""
    met = getattr(result, "app_problem", None) if result else None
    synced = result is not None and any(u.status == Outcome.OK for u in result.users)
    texts = {
        Problem.INVALID_CLIENT: (
            "Spotify refuses the app's credentials",
            "Spotify answered `invalid_client`: the app's client id or secret is wrong or was "
            "reset. Copy both from the app in Spotify's developer dashboard into the repository "
            f"secrets SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET ({place.secrets_page}). No "
            "user is synced until then.",
        ),
        Problem.PREMIUM_LAPSED: (
            "Spotify stopped the app: its owner's Premium lapsed",
            'Spotify answers every request with 403 "Active premium subscription required for '
            'the owner of the app": a development-mode app works only while the account that '
            "owns it has Premium. Renew Premium on the app owner's account; the next run "
            "continues. Nobody needs to sign in again.",
        ),
    }
    for problem, app_problem in ((Problem.INVALID_CLIENT, AppProblem.INVALID_CLIENT),
                                 (Problem.PREMIUM_LAPSED, AppProblem.PREMIUM_LAPSED)):  # fmt: skip
        key = (problem, APP)
        if met == app_problem:
            title, text = texts[problem]
            out.present[key] = Notice(title, _body(key, text))
        elif not synced:
            out.unknown.add(key)
