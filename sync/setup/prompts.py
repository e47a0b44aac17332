"""Asking for values: flag, then environment, then a prompt; never a prompt without a terminal.

Everything that touches the terminal, the clock or other programs is a field of SetupIO,
so tests replace it with scripted answers, a fake clock and a fake `gh`.
"""

from __future__ import annotations

import getpass
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from sync.config.urlcheck import unquote
from sync.errors import UserError
from sync.redact import Redactor

log = logging.getLogger(__name__)


_GH_TOKENS = frozenset({"GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN",
                        "GITHUB_ENTERPRISE_TOKEN"})  # fmt: skip  # gh's own sign-in


def _secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in _GH_TOKENS:
        return False
    return upper.endswith("DATABASE_URL") or any(
        word in upper for word in ("SECRET", "PASSWORD", "TOKEN")
    )


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a program setup starts (gh, git, a browser, pg_ctl): no secrets.

    .env is loaded into this process's environment, but `gh` needs none of its values
    (they reach `gh secret set` on stdin); gh's own tokens stay.
    """
    return {k: v for k, v in environ.items() if not _secret_name(k)}


@contextmanager
def secrets_out_of_environ() -> Iterator[None]:
    """While setup runs, programs started by any library (webbrowser, pg_ctl) inherit
    child_env(); the process's environment is put back afterwards."""
    saved = dict(os.environ)
    for name in set(os.environ) - set(child_env(os.environ)):
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run a program; return its exit code and output. Values go on stdin, never in argv."""
    try:
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, env=child_env(os.environ), **feed)  # fmt: skip
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} gave no answer within {timeout:.0f} s"
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


@dataclass
class SetupIO:
    """The outside world of setup, replaceable in tests."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool = field(default_factory=lambda: sys.stdin.isatty())
    read_line: Callable[[str], str] = input
    read_secret: Callable[[str], str] = getpass.getpass
    run: Callable[..., tuple[int, str]] = _run
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    redactor: Redactor = field(default_factory=Redactor)

    def say(self, text: str = "") -> None:
        self.out.write(self.redactor.redact(text) + "\n")
        self.out.flush()


def clean_value(name: str, raw: str) -> str:
    """Trim, drop one pair of surrounding quotes (people paste "abc"), refuse inner spaces."""
    value = unquote(raw)
    if any(ch.isspace() for ch in value):
        raise UserError(f"{name} contains a space or line break: copy it again, without spaces")
    return value


def need(
    io: SetupIO,
    name: str,
    flag: str,
    prompt: str,
    *,
    secret: bool = False,
    allow_empty: bool = False,
) -> str:
    """Ask for a value in a terminal; without one, stop with the flag that supplies it."""
    if not io.interactive:
        raise UserError(f"{name} is needed and stdin is not a terminal: pass {flag}")
    while True:
        try:
            raw = (io.read_secret if secret else io.read_line)(prompt)
        except EOFError:
            raise UserError(f"no answer for {name} (stdin closed): pass {flag}") from None
        try:
            value = clean_value(name, raw)
        except UserError as exc:  # a stray space: say so and ask again
            io.say(f"  {exc}")
            continue
        if value or allow_empty:
            break
        io.say(f"  {name} is needed: paste it and press Enter (Ctrl-C stops setup)")
    if secret:
        io.redactor.protect(value)
    return value


def confirm(io: SetupIO, question: str, default: bool, *, assume_yes: bool) -> bool:
    """Yes/no. --yes takes the default; without a terminal (and no --yes) the answer is no."""
    hint = "[Y/n]" if default else "[y/N]"
    if assume_yes:
        io.say(f"{question} {hint} {'yes' if default else 'no'} (--yes: the default)")
        return default
    if not io.interactive:
        io.say(f"{question} {hint} no (stdin is not a terminal; --yes accepts the default)")
        return False
    try:
        answer = io.read_line(f"{question} {hint} ").strip().lower()
    except EOFError:
        return False
    return default if not answer else answer in ("y", "yes")
