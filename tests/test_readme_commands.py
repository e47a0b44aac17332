"""Every command in the README that needs no Spotify account works as written.

The commands come from README.md's fenced ```sh / ```bash / ```shell blocks, in order.
Rules (explicit, so the test cannot quietly pass by skipping everything):

- Run: commands that invoke the job, `python -m sync ...` (also `python3`,
  `.venv/bin/python`). Everything else (git, pip, cp, gh, curl, pytest, ...) sets up a
  machine or talks to GitHub: not run here (the test suite itself is the pytest command).
- Skip, needs a Spotify account or a user that exists: `setup`, `login`, `import`, `stats`,
  `users remove`, `users set-timezone`, and any command with `--user`.
- Skip, `demo`: it refuses DATABASE_URL without `--yes` and takes seconds to make a year
  of plays; tests/test_demo.py runs it as the README shows it (embedded, no DATABASE_URL).
- Skip, needs a real value: a command with a placeholder (`<...>`, `YOUR-...`, or an
  argument in capitals such as USER, ID, PATH).
- Shell plumbing: only the `python -m sync` part before a `|`, `>` or `&&` is run;
  leading `NAME=value` assignments are applied, except DATABASE_URL and SYNC_DATA_DIR,
  which the test points at a fresh empty database shared by the commands in README
  order; a second pass leaves DATABASE_URL unset (embedded Postgres in a temporary
  SYNC_DATA_DIR) and runs the `migrate` and `run` commands only, to keep it quick.
- Expected exit code 0, except `doctor`: 1, as documented, because here nobody has
  signed in and no Spotify app is configured, which blocks syncing.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
NEEDS_ACCOUNT = {"setup", "login", "import", "stats"}
RUN_ELSEWHERE = {"demo": "tests/test_demo.py runs it as the README shows it"}
NEEDS_USER = {("users", "remove"), ("users", "set-timezone")}
EXPECTED_EXIT = {"doctor": 1}
MIN_RUN = 5  # at least --help, migrate, users, run, doctor
# With DATABASE_URL unset (embedded Postgres, ~1 s to start per command) only these run:
# enough to show a fresh machine needs nothing else installed.
EMBEDDED_TOO = {"migrate", "run"}
MUST_APPEAR = ("python -m sync migrate", "python -m sync login", "python -m sync run",
               "python -m sync doctor")  # fmt: skip
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"<[^>]+>|YOUR[-_]|^[A-Z][A-Z_]+$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shell_commands(markdown: str) -> list[str]:
    """Command lines of the shell blocks: continuations joined, prompts and comments dropped."""
    found = []
    for language, body in _FENCE.findall(markdown):
        if language.lower() not in SHELL_LANGUAGES:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if line and not line.startswith("#"):
                found.append(line)
    return found


@dataclass
class Planned:
    text: str
    argv: list[str] | None  # None: not run
    env: dict[str, str]
    reason: str  # why it is skipped, or the sync subcommand
    expected: int = 0


def plan(line: str) -> Planned:
    """Apply the rules in the module docstring to one README command line."""
    first = re.split(r"\s(?:\||&&|;|>>?|<)\s?", " " + line + " ", maxsplit=1)
    part = first[0].strip() if first[0].strip() else line
    try:
        words = shlex.split(part, comments=True)
    except ValueError:
        return Planned(line, None, {}, "not a simple command")
    env = {}
    while words and _ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    if len(words) < 3 or not re.search(r"(^|/)python3?$", words[0]) or words[1:3] != ["-m", "sync"]:
        return Planned(line, None, env, "not a sync command")
    args = words[3:]
    sub = next((a for a in args if not a.startswith("-")), "")
    pair = tuple(a for a in args if not a.startswith("-"))[:2]
    if sub in NEEDS_ACCOUNT or pair in NEEDS_USER or "--user" in args:
        return Planned(line, None, env, "needs a Spotify account or an existing user")
    if sub in RUN_ELSEWHERE:
        return Planned(line, None, env, RUN_ELSEWHERE[sub])
    if any(_PLACEHOLDER.search(a) for a in args) or any(
        _PLACEHOLDER.search(v) for v in env.values()
    ):
        return Planned(line, None, env, "has a placeholder")
    for name in ("DATABASE_URL", "SYNC_DATA_DIR"):
        env.pop(name, None)
    return Planned(line, [sys.executable, "-m", "sync", *args], env, sub or "--help",
                   EXPECTED_EXIT.get(sub, 0))  # fmt: skip


def test_rules_on_typical_lines():
    assert plan("python -m sync migrate").argv[3:] == ["migrate"]
    assert plan(".venv/bin/python -m sync run --json | jq .tracks_added").argv[3:] == [
        "run",
        "--json",
    ]
    assert plan("SYNC_SHOW_USER_IDS=true python3 -m sync users").env == {
        "SYNC_SHOW_USER_IDS": "true"
    }
    assert plan("python -m sync doctor").expected == 1
    for line in ("python -m sync login --headless", "python -m sync import export.zip --user me",
                 "python -m sync users remove user-1 --yes", "python -m sync run --user alice",
                 "git clone https://github.com/YOUR-NAME/YOUR-REPO.git", "pip install -r x.txt",
                 "python -m pytest -q"):  # fmt: skip
        assert plan(line).argv is None, line
    assert plan("python -m sync users set-timezone USER Europe/Berlin").argv is None
    assert plan("python -m sync demo").argv is None
    blocks = (
        "```sh\n$ python -m sync \\\n  run --dry-run  # try\n# note\n```\n```sql\nselect 1;\n```\n"
    )
    assert shell_commands(blocks) == ["python -m sync    run --dry-run  # try"]


@pytest.fixture(scope="module")
def readme_plan() -> list[Planned]:
    assert README.exists(), "README.md is missing"
    text = README.read_text()
    for command in MUST_APPEAR:
        assert command in text, f"README.md should show `{command}`"
    planned = [plan(line) for line in shell_commands(text)]
    runnable = [p for p in planned if p.argv is not None]
    assert len(runnable) >= MIN_RUN, (
        f"only {len(runnable)} runnable README commands found: "
        + "; ".join(f"{p.text} ({p.reason})" for p in planned)
    )
    return planned


@pytest.mark.parametrize("database", ["DATABASE_URL", "embedded"])
def test_readme_commands_work_as_written(readme_plan, database, empty_db_url, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
    env["PYTHONPATH"] = str(ROOT)  # run from an empty directory: no stray .env is read
    if database == "embedded":
        env["SYNC_DATA_DIR"] = str(tmp_path / "data")
    else:
        env["DATABASE_URL"] = empty_db_url
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    failures, ran = [], 0
    for step in readme_plan:
        if step.argv is None or (database == "embedded" and step.reason not in EMBEDDED_TOO):
            continue
        done = subprocess.run(step.argv, cwd=workdir, env={**env, **step.env},
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        ran += 1
        if done.returncode != step.expected:
            failures.append(f"`{step.text}` exited {done.returncode}, expected {step.expected}:"
                            f"\n{done.stdout[-800:]}{done.stderr[-800:]}")  # fmt: skip
        elif "Traceback" in done.stderr:
            failures.append(f"`{step.text}` printed a traceback:\n{done.stderr[-1500:]}")
        elif step.reason == "doctor" and not re.search(r"problems? blocks? syncing", done.stdout):
            failures.append(f"`{step.text}` did not explain why it exits 1:\n{done.stdout}")
    assert ran >= (MIN_RUN if database == "DATABASE_URL" else len(EMBEDDED_TOO))
    assert not failures, "\n\n".join(failures)
