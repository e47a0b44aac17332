"""GitHub's runner as the workflow tests need it: how it runs a step and how it cancels one.

The runner writes a step's `run:` script to a file and, for `shell: bash` (every workflow here
sets it as the default; tests/test_workflows.py checks), runs `bash --noprofile --norc -eo
pipefail FILE`; with no shell given it would run `bash -e FILE`, without pipefail. On a cancel
or a timeout it sends SIGINT to that bash only, SIGTERM 7.5 s later, and kills the process
tree 2.5 s after that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable

STEP_SHELL = ("bash", "--noprofile", "--norc", "-eo", "pipefail")
SIGTERM_AFTER = 7.5  # the runner's schedule after its SIGINT
KILL_AFTER = 2.5


def cancel_like_the_runner(
    proc: subprocess.Popen, after_sigint: Callable[[], None] = lambda: None
) -> tuple[float, str]:
    """SIGINT to bash's pid only, SIGTERM 7.5 s later, the group killed 2.5 s after that.

    `proc` must have its own session (start_new_session=True), as a step's tree has.
    Returns the seconds from the SIGINT to bash's exit, and what ended it."""
    os.kill(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    after_sigint()
    try:
        proc.wait(timeout=SIGTERM_AFTER)
        return time.monotonic() - sent, "itself"
    except subprocess.TimeoutExpired:
        pass
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_AFTER)
        ended = "SIGTERM"
    except subprocess.TimeoutExpired:
        ended = "kill"
    seconds = time.monotonic() - sent
    kill_group(proc)  # the runner kills the whole tree: bash's orphaned children too
    return seconds, ended


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
