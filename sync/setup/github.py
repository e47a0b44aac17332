"""The GitHub part of setup: repository secrets, the workflow and its first run, through `gh`.

Secret values reach `gh secret set NAME` on its stdin, never on a command line. Every
wait has a deadline. Without `gh` (or when declined) setup prints what to click instead.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sync.setup.prompts import SetupIO, confirm

log = logging.getLogger(__name__)

SECRETS = ("DATABASE_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")
WORKFLOW = "sync.yml"
RUN_FIELDS = "databaseId,status,conclusion,url"
POLL_SECONDS = 10.0
_GITHUB_REPO = re.compile(r"github\.com[:/]([\w.-]+/[\w.-]+?)(?:\.git)?/?$")


class GhState(StrEnum):
    """The values of GitHub's that setup decides on, as `gh ... --json` prints them.

    GitHub's words, not this project's statuses (those are sync.statuses): one home here.
    """

    WORKFLOW_ENABLED = "active"  # a workflow's state
    COMPLETED = "completed"  # a run's status once it has ended
    SUCCESS = "success"  # a completed run's conclusion


class GhFailed(Exception):
    """A gh command failed; the message is gh's own output (never holds a secret value)."""


@dataclass
class Gh:
    io: SetupIO

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        code, output = self.io.run(["gh", *args], stdin)
        if code != 0:
            last = (output.splitlines() or [f"exit code {code}"])[-1]
            raise GhFailed(f"gh {' '.join(args[:2])} failed: {last}")
        return output

    def json(self, *args: str) -> Any:
        return json.loads(self(*args) or "null")


@dataclass(frozen=True)
class GithubOptions:
    skip: bool  # --no-github
    assume_yes: bool  # --yes
    wait_seconds: float  # deadline for the first run
    replace_secrets: bool = False  # --replace-secrets: set them although all are there
    new_run: bool = False  # --new-run: start a run although the latest one succeeded
    changed: tuple[str, ...] = ()  # secrets whose value in .env this setup changed


def repo_slug(io: SetupIO) -> str | None:
    """OWNER/REPO of the clone's origin on GitHub, for links; None when unknown."""
    code, output = io.run(["git", "remote", "get-url", "origin"])
    match = _GITHUB_REPO.search(output.strip()) if code == 0 else None
    return match.group(1) if match else None


def print_manual(io: SetupIO, reason: str) -> None:
    """The secrets table and the clicks, for doing the GitHub part in the browser."""
    slug = repo_slug(io) or "YOUR-NAME/YOUR-REPO"
    io.say(f"  {reason}. Do this part in the browser:")
    io.say(f"  1. https://github.com/{slug}/settings/secrets/actions")
    io.say(
        "     (Settings > Secrets and variables > Actions > New repository secret), one per row;"
    )
    io.say("     the values are the lines of the same name in .env (paste without quotes):")
    io.say("       | secret                | value                                  |")
    io.say("       |-----------------------|----------------------------------------|")
    io.say("       | DATABASE_URL          | DATABASE_URL in .env (connection string) |")
    io.say("       | SPOTIFY_CLIENT_ID     | SPOTIFY_CLIENT_ID in .env              |")
    io.say("       | SPOTIFY_CLIENT_SECRET | SPOTIFY_CLIENT_SECRET in .env          |")
    io.say(f"  2. https://github.com/{slug}/actions/workflows/{WORKFLOW}: in a fork, first click")
    io.say("     'I understand my workflows, go ahead and enable them', then 'Enable workflow'.")
    io.say(
        "  3. On the same page: Run workflow > Run workflow; the run's Summary shows the result."
    )


def github_step(io: SetupIO, values: Mapping[str, str], options: GithubOptions) -> None:
    """Set the secrets, enable the workflow and start (and wait for) its first run."""
    if options.skip:
        return print_manual(io, "--no-github")
    if shutil.which("gh") is None:
        return print_manual(io, "The GitHub CLI (gh) is not installed")
    gh = Gh(io)
    code, _ = io.run(["gh", "auth", "status"])
    if code != 0:
        return print_manual(io, "gh is installed but not signed in (gh auth login)")
    try:
        if not _secrets(io, gh, values, options):
            return print_manual(io, "Secrets not set")
        _enable(io, gh, options)
        _first_run(io, gh, options)
    except GhFailed as exc:
        io.say(f"  {exc}")
        print_manual(io, "gh could not finish")


def _secrets(io: SetupIO, gh: Gh, values: Mapping[str, str], options: GithubOptions) -> bool:
    present = {item["name"] for item in gh.json("secret", "list", "--json", "name") or []}
    missing = [name for name in SECRETS if name not in present]
    stale = [name for name in SECRETS if name in options.changed]
    if not missing and not stale:
        io.say(f"  done: the repository has the secrets {', '.join(SECRETS)}")
        if not options.replace_secrets:
            return True
        io.say("  --replace-secrets: setting them again from .env")
    elif not missing:
        question = f"  {', '.join(stale)} changed in .env: replace the repository secrets?"
        if not confirm(io, question, True, assume_yes=options.assume_yes):
            return True
    elif not confirm(io, f"  Set the repository secrets {', '.join(SECRETS)} from .env with gh?",
                     True, assume_yes=options.assume_yes):  # fmt: skip
        return False
    for name in SECRETS:
        gh("secret", "set", name, stdin=values[name])  # the value on stdin only
        io.say(f"  set secret {name}")
    return True


def _enable(io: SetupIO, gh: Gh, options: GithubOptions) -> None:
    workflows = gh.json("workflow", "list", "--all", "--json", "path,state") or []
    state = next((w["state"] for w in workflows if w["path"].endswith("/" + WORKFLOW)), None)
    if state == GhState.WORKFLOW_ENABLED:
        io.say(f"  done: the workflow {WORKFLOW} is enabled")
        return
    if confirm(io, f"  Enable the workflow {WORKFLOW} ({state or 'state unknown'})?", True,
               assume_yes=options.assume_yes):  # fmt: skip
        gh("workflow", "enable", WORKFLOW)
        io.say(f"  enabled {WORKFLOW}: it runs every hour from now on")


def _latest_run(gh: Gh) -> dict | None:
    runs = gh.json("run", "list", "--workflow", WORKFLOW, "--limit", "1", "--json", RUN_FIELDS)
    return runs[0] if runs else None


def _first_run(io: SetupIO, gh: Gh, options: GithubOptions) -> None:
    last = _latest_run(gh)
    if last and last.get("conclusion") == GhState.SUCCESS:
        io.say(f"  done: the latest run succeeded ({last['url']})")
        if not options.new_run:
            return
        io.say("  --new-run: starting another")
    elif not confirm(io, f"  Start a run now and wait for it (up to "
                     f"{options.wait_seconds / 60:.0f} min)?", True,
                     assume_yes=options.assume_yes):  # fmt: skip
        return
    gh("workflow", "run", WORKFLOW)
    io.say(f"  started {WORKFLOW}; waiting for GitHub to pick it up")
    run = _wait(io, gh, last["databaseId"] if last else None, options.wait_seconds)
    if run is None:
        io.say(f"  no new run showed up within {options.wait_seconds:.0f} s: look at the "
               "Actions tab (gh run list --workflow sync.yml)")  # fmt: skip
    elif run["status"] != GhState.COMPLETED:
        io.say(f"  the run is still {run['status']} after {options.wait_seconds:.0f} s: follow "
               f"it at {run['url']} (or gh run watch {run['databaseId']})")  # fmt: skip
    elif run["conclusion"] == GhState.SUCCESS:
        io.say(f"  first run: success. Its summary: {run['url']}")
    else:
        io.say(f"  first run: {run['conclusion']}. Open {run['url']}: the last line of the "
               "Sync step says what is wrong and how to fix it; then run setup again")  # fmt: skip


def _wait(io: SetupIO, gh: Gh, previous: int | None, seconds: float) -> dict | None:
    """Poll the newest run until it completes or the deadline passes; return what was seen."""
    deadline = io.clock() + seconds
    seen = None
    while True:
        run = _latest_run(gh)
        if run and run.get("databaseId") != previous:
            seen = run
            if run.get("status") == GhState.COMPLETED:
                return run
        left = deadline - io.clock()
        if left <= 0:
            return seen
        io.sleep(min(POLL_SECONDS, left))
