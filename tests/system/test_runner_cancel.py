"""The workflow's own Sync step, cancelled the way GitHub's runner cancels it.

On a cancel or a timeout the runner sends SIGINT to the step's entry process (the
`bash --noprofile --norc -eo pipefail FILE` running the `run:` script), SIGTERM 7.5 s later,
and kills the process tree 2.5 s after that. Children of that bash get no signal: the sync
stops cleanly only if the script `exec`s it. This test writes the Sync step's script from
.github/workflows/sync.yml to a file, runs it with that bash against the test database and
the local stand-in Spotify, cancels it while a Spotify request is in flight, and checks what
the run left behind. The `child` case runs the script from before the `exec`
(467f921: `python -m sync ... || rc=$?`) and shows it was still running at the SIGTERM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import add_user
from tests.support.runner import SIGTERM_AFTER, STEP_SHELL, cancel_like_the_runner, kill_group
from tests.support.spotify_fakes import window
from tests.support.standin import Standin
from tests.test_workflows import ROOT, SYNC, sync_script

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
USERS = 160  # with LATENCY and 4 workers a whole run takes ~20 s: longer than the schedule
LATENCY = 0.25  # seconds per stand-in request
BEFORE_EXEC = "467f921"  # the last sync.yml whose Sync step ran the sync as a child of bash


def _script(version: str) -> str:
    """The Sync step's `run:` script: this checkout's, or the one from before the `exec`."""
    if version == "exec":
        return sync_script(SYNC)
    try:
        old = subprocess.run(
            ["git", "show", f"{BEFORE_EXEC}:.github/workflows/sync.yml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip(f"git history with {BEFORE_EXEC} is not available (a shallow clone?)")
    steps = yaml.safe_load(old)["jobs"]["sync"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == "Sync")


def _users(conn, standin: Standin) -> None:
    for n in range(USERS):
        name = f"u{n:03d}"
        add_user(conn, name, f"refresh-{name}-0001")
        standin.state.refresh_tokens[f"refresh-{name}-0001"] = name
        standin.state.plays[name] = window(NEWEST, 2, start_n=2 * n)


@pytest.mark.parametrize("version", ["exec", "child"])
def test_a_cancelled_sync_step_stops_cleanly_before_the_sigterm(version, db_url, conn, tmp_path):
    script = tmp_path / "sync-step.sh"
    script.write_text(_script(version))
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with Standin() as standin, out.open("w") as stdout, err.open("w") as stderr:
        standin.state.rotate = True
        standin.state.latency = LATENCY
        _users(conn, standin)
        standin.state.hold_user = "u000"  # the first user's recently-played request hangs
        env = standin.cli_env(
            db_url,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
            SYNC_NOTIFY="off",
            INPUT_USER="",
            INPUT_DRY_RUN="false",
            REPO_PRIVATE="true",
        )
        proc = subprocess.Popen(
            [*STEP_SHELL, str(script)],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, for the runner's kill
        )
        try:
            deadline = time.monotonic() + 60
            while not standin.state.held.wait(0.1):  # until the request is in flight
                assert proc.poll() is None, f"exited {proc.returncode}: {err.read_text()}"
                assert time.monotonic() < deadline, "u000's request never arrived"
            # Spotify answers the request in flight after the signal
            seconds, ended = cancel_like_the_runner(proc, standin.state.release.set)
        finally:
            standin.state.release.set()
            if proc.poll() is None:
                kill_group(proc)
    print(f"\n{version}: {seconds:.2f} s from SIGINT to exit ({ended}), exit {proc.returncode}")
    runs = conn.execute("select status from sync_runs").fetchall()
    if version == "child":
        # the old step: bash waits for its child, which never heard the cancel
        assert ended != "itself", f"exited {seconds:.2f} s after SIGINT: {err.read_text()}"
        assert runs == [("running",)]  # killed half way, left for the next run to close
        return
    assert ended == "itself", f"still running {SIGTERM_AFTER} s after SIGINT"
    assert proc.returncode == 130, err.read_text()
    assert "SIGINT: starting no more users" in err.read_text()
    assert runs == [("interrupted",)]
    claimed = conn.execute(
        "select count(*) from user_tokens where lease_run is not null and lease_until > now()"
    ).fetchone()[0]
    assert claimed == 0, "a user is still claimed by the interrupted run"
    stored = dict(conn.execute("select user_id, refresh_token from user_tokens").fetchall())
    live = {user: token for token, user in standin.state.refresh_tokens.items()}
    assert stored == live, "a refresh token Spotify rotated was not stored"
    assert stored["u000"] != "refresh-u000-0001"  # the user in flight did rotate
    synced = conn.execute("select count(distinct user_id) from listening_history").fetchone()[0]
    assert 0 < synced < USERS  # stopped part way: the users not started are left for later
