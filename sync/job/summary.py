"""Run reporting: log lines, GitHub annotations and step summary, and --json output.

Privacy: logs and summaries of public repositories are public. Users appear as a
short stable alias (user-<n>) unless SYNC_SHOW_USER_IDS=true; no track names or
other listening details are printed; every text passes through the Redactor.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TextIO

from sync.job.results import RunResult, UserResult
from sync.names import alias
from sync.redact import Redactor
from sync.statuses import Outcome, WarningCode

log = logging.getLogger(__name__)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


# A user that met (or was not started because of) a refusal of the whole app: its own
# line points at the run's one statement of the cause and fix instead of repeating it.
APP_FAILED = "Spotify refused the whole app"
APP_SKIPPED = "not synced: Spotify refused the whole app"


def user_error(res: UserResult, where: str) -> str | None:
    """The error shown on this user's line; `where` points at the app-wide cause and fix."""
    if res.app_problem is None:
        return res.error
    return f"{APP_FAILED if res.status == Outcome.FAILED else APP_SKIPPED} ({where})"


def user_line(res: UserResult, name: str) -> str:
    line = (
        f"{name}: {res.status}, {res.new_tracks} new of {res.fetched} fetched"
        f", {res.skipped_items} skipped items ({res.duration_s:.1f}s)"
    )
    error = user_error(res, "cause and fix at the end of the run")
    if error:
        line += f": {error}"
    return line


class Reporter:
    """Writes per-user lines as results arrive, then totals, annotations and the summary."""

    def __init__(
        self,
        redactor: Redactor,
        stream: TextIO,
        *,
        show_ids: bool = False,
        github_actions: bool = False,
    ):
        self.redactor = redactor
        self.stream = stream
        self.show_ids = show_ids
        self.github_actions = github_actions
        self._lock = threading.Lock()

    def name(self, res: UserResult) -> str:
        return alias(res.key, res.user_id, self.show_ids)

    def _write(self, text: str) -> None:
        self.stream.write(self.redactor.redact(text) + "\n")
        self.stream.flush()

    def user_done(self, res: UserResult) -> None:
        with self._lock:
            name = self.name(res)
            if self.github_actions:
                self._write(f"::group::{name}: {res.status}")
            self._write(user_line(res, name))
            for note in res.warnings:
                self._write(f"{name}: warning: {note.text}")
            if self.github_actions:
                self._write("::endgroup::")

    def finish(self, result: RunResult) -> None:
        t = result.totals()
        dry = " (dry run: nothing written)" if result.dry_run else ""
        self._write(
            f"sync finished{dry}: {t['users_synced']}/{t['users_total']} users synced, "
            f"{t['users_failed']} failed, {t['users_needs_reauth']} need re-auth, "
            f"{t['users_skipped']} skipped, {t['tracks_added']} new plays "
            f"in {result.duration_s:.1f}s"
        )
        for run_id, started in result.killed_runs:
            self._write(f"run {run_id} (started {started:%Y-%m-%d %H:%M} UTC) never finished "
                        "and was closed as killed")  # fmt: skip
        app = app_refusal(result)
        if app:  # once: in GitHub Actions the one ::error annotation below says it
            if not self.github_actions:
                self._write(f"run stopped: {app}")
        elif result.stopped:
            self._write(f"run stopped early: {result.stopped}")
        if self.github_actions:
            for line in annotations(result, self.name):
                self._write(line)


def no_users_message(embedded_dir: Path | None) -> str:
    """What a run that found nobody to sync says: on the embedded database (a first try on
    this machine) that it worked and what comes next; with DATABASE_URL, where to sign in."""
    if embedded_dir is None:
        return (
            "no users to sync yet: sign in with python -m sync login (or python -m sync setup) "
            "with DATABASE_URL set to this database"
        )
    return (
        f"the run worked: the embedded database in {embedded_dir}/ is ready and its tables "
        "are in place, but nobody is signed in, so there is nobody to sync yet. Next: "
        "python -m sync demo to see what you would get, python -m sync setup (or python -m "
        "sync login) to add your account"
    )


def app_refusal(result: RunResult) -> str | None:
    """The cause and fix of a refusal of the whole app, said once for the run (not per user):
    the error of the first user that met it, or the run's stop reason."""
    if result.app_problem is None:
        return None
    met = (
        u.error
        for u in result.users
        if u.app_problem == result.app_problem and u.status == Outcome.FAILED and u.error
    )
    return next(met, None) or result.stopped or str(result.app_problem)


def annotations(result: RunResult, name) -> list[str]:
    lines = []
    app = app_refusal(result)
    if app:
        lines.append(f"::error title=Spotify app::{escape_data(app)}")
    for res in result.users:
        who = name(res)
        if app and res.app_problem is not None:
            continue  # said once above
        if res.status == Outcome.FAILED:
            lines.append(f"::error title={escape_property(who)}::{escape_data(res.error or '')}")
        elif res.status in (Outcome.NEEDS_REAUTH, Outcome.REFUSED):
            text = res.error or "needs to sign in again (python -m sync login)"
            kind = "error" if res.newly_needs_reauth else "warning"
            lines.append(f"::{kind} title={escape_property(who)}::{escape_data(text)}")
        elif res.status == Outcome.SKIPPED and res.error:
            lines.append(f"::notice title={escape_property(who)}::{escape_data(res.error)}")
        for note in res.warnings:
            if note.code not in (WarningCode.NEEDS_SIGN_IN, WarningCode.NOT_ALLOWED):
                kind = "error" if note.code == WarningCode.LOCKED_LONG else "warning"
                lines.append(f"::{kind} title={escape_property(who)}::{escape_data(note.text)}")
    if result.stopped and not result.interrupted and not app:
        lines.append(f"::warning title=Run stopped early::{escape_data(result.stopped)}")
    for run_id, _ in result.killed_runs:
        lines.append(f"::warning title=Killed run::run {run_id} never finished; closed as killed")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


STATUS_ICON = {
    Outcome.OK: "✅",
    Outcome.NEEDS_REAUTH: "🔑",
    Outcome.FAILED: "❌",
    Outcome.SKIPPED: "⏭️",
    Outcome.REFUSED: "🚫",
}
# Warnings that need the owner, shown above the table, in this order.
BANNER_CODES = (WarningCode.LOCKED_LONG, WarningCode.TOKEN_EXPIRING)


def summary_markdown(result: RunResult, name, run_url: str | None = None) -> str:
    """The run as GitHub's step summary: totals, what needs attention, a row per user."""
    out = _totals_table(result) + _callouts(result, name) + _users_table(result, name)
    if run_url:
        out += ["", f"Run recorded in `sync_runs` ([this run]({run_url}))."]
    return "\n".join(out) + "\n"


def _totals_table(result: RunResult) -> list[str]:
    t = result.totals()
    title = "Spotify history sync" + (" (dry run, nothing written)" if result.dry_run else "")
    return [
        f"## {title}",
        "",
        "| users | synced | failed | need re-auth | skipped | new plays | duration |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {t['users_total']} | {t['users_synced']} | {t['users_failed']} "
        f"| {t['users_needs_reauth']} | {t['users_skipped']} | {t['tracks_added']} "
        f"| {result.duration_s:.1f}s |",
        "",
    ]


def _callouts(result: RunResult, name) -> list[str]:
    """GitHub alerts for what concerns the run: why it stopped, killed runs, gaps, warnings."""
    out: list[str] = []
    gaps = [name(u) for u in result.users if u.possible_gap]
    banner = [
        (name(u), n.text)
        for code in BANNER_CODES
        for u in result.users
        for n in u.warnings
        if n.code == code
    ]
    app = app_refusal(result)
    if app:
        out += [f"> [!CAUTION]\n> {app}.", ""]
    elif result.stopped:
        out += [f"> [!WARNING]\n> The run stopped early: {result.stopped}.", ""]
    if result.killed_runs:
        ids = ", ".join(str(i) for i, _ in result.killed_runs)
        runs = "Run" if len(result.killed_runs) == 1 else "Runs"
        out += [f"> [!NOTE]\n> {runs} {ids} never finished (killed); closed as `killed`.", ""]
    if gaps:
        out += [
            f"> [!WARNING]\n> Possible gap for {', '.join(gaps)}: all 50 plays in Spotify's "
            "window were new, so plays in between may be lost. Sync more often or import a "
            "data export.",
            "",
        ]
    if banner:
        out += ["> [!WARNING]"] + [f"> {who}: {w}  " for who, w in banner] + [""]
    return out


def _users_table(result: RunResult, name) -> list[str]:
    if not result.users:
        return [
            "> [!WARNING]",
            "> No users in `user_tokens` yet, so nothing is synced: run `python -m sync login`",
            "> (or `python -m sync setup`) with `DATABASE_URL` set to this database.",
        ]
    out = [
        "| user | status | new plays | fetched | skipped items | warnings |",
        "|---|---|---:|---:|---:|---|",
    ]
    for u in result.users:
        error = user_error(u, "see above")
        notes = [n.text for n in u.warnings] + ([error] if error else [])
        out.append(
            f"| {_cell(name(u))} | {STATUS_ICON.get(u.status, '')} {u.status} "
            f"| {u.new_tracks} | {u.fetched} | {u.skipped_items} "
            f"| {_cell('; '.join(notes))} |"
        )
    return out


def write_step_summary(path: str, text: str, redactor: Redactor) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(redactor.redact(text))


def json_report(result: RunResult, name) -> str:
    t = result.totals()
    return json.dumps(
        {
            "run_id": result.run_id,
            "dry_run": result.dry_run,
            "stopped": result.stopped,
            "app_problem": result.app_problem,
            "users_total": t["users_total"],
            "users_synced": t["users_synced"],
            "users_failed": t["users_failed"],
            "users_needs_reauth": t["users_needs_reauth"],
            "users_skipped": t["users_skipped"],
            "tracks_added": t["tracks_added"],
            "duration_s": round(result.duration_s, 3),
            "users": [
                {
                    "user_id": name(u),
                    "status": u.status,
                    "new_tracks": u.new_tracks,
                    "fetched": u.fetched,
                    "skipped_items": u.skipped_items,
                    "possible_gap": u.possible_gap,
                    "warnings": [n.text for n in u.warnings],
                    "error": u.error,
                }
                for u in result.users
            ],
        }
    )
