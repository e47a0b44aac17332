"""`python -m sync run` as a subprocess against the local stand-in Spotify."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.standin import Standin

ROOT = Path(__file__).resolve().parents[2]


def run_cli(db_url: str, standin: Standin, *args: str, extra_env: dict | None = None):
    env = standin.cli_env(db_url, **(extra_env or {}))
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_subprocess_syncs_then_adds_nothing_on_rerun(db_url, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    with Standin() as standin:
        standin.state.refresh_tokens["refresh-alice-0001"] = "alice"
        standin.state.plays["alice"] = window(datetime(2026, 11, 28, 12, 0, tzinfo=UTC), 30)
        first = run_cli(db_url, standin, "run", "--json")
        second = run_cli(db_url, standin, "run", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["tracks_added"] == 30
    assert report["users"][0]["status"] == "ok"
    assert report["users"][0]["user_id"] == "user-1"  # alias, not the Spotify id
    assert json.loads(second.stdout)["tracks_added"] == 0
    stored = conn.execute("select count(*) from listening_history").fetchone()[0]
    assert stored == 30


def test_run_subprocess_requests_per_user(db_url, conn):
    """Refresh + one page on the first run; one page on the next (token still valid), even
    though full pages carry a `next` link."""
    add_user(conn, "alice", "refresh-alice-0001")
    with Standin() as standin:
        standin.state.next_link = True
        standin.state.refresh_tokens["refresh-alice-0001"] = "alice"
        plays = window(datetime(2026, 11, 28, 12, 0, tzinfo=UTC), 55)
        standin.state.plays["alice"] = plays[5:]
        first = run_cli(db_url, standin, "run", "--json")
        first_requests = list(standin.state.requests)
        standin.state.requests.clear()
        standin.state.plays["alice"] = plays[:50]
        second = run_cli(db_url, standin, "run", "--json")
        second_requests = list(standin.state.requests)
    assert first.returncode == 0, first.stderr
    # a fresh user: nothing stored, so the `next` page is read too (it is empty)
    assert [m for m, _ in first_requests] == ["POST", "GET", "GET"]
    assert second_requests == [("GET", "/v1/me/player/recently-played")]
    assert json.loads(second.stdout)["tracks_added"] == 5


def test_run_subprocess_invalid_grant_fails_once_then_warns(db_url, conn, tmp_path):
    add_user(conn, "alice", "refresh-alice-0001")
    add_user(conn, "bob", "refresh-bob-revoked")
    summary = tmp_path / "summary.md"
    actions = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    with Standin() as standin:
        standin.state.refresh_tokens["refresh-alice-0001"] = "alice"
        standin.state.plays["alice"] = window(datetime(2026, 11, 28, 12, 0, tzinfo=UTC), 3)
        first = run_cli(db_url, standin, "run", extra_env=actions)
        second = run_cli(db_url, standin, "run", extra_env=actions)
    assert first.returncode == 1
    assert "::error title=user-2::" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "::warning title=user-2::" in second.stderr
    assert "Traceback" not in first.stderr + second.stderr
    assert summary.read_text().count("## Spotify history sync") == 2


def test_configuration_error_exits_2_without_traceback(db_url):
    with Standin() as standin:
        result = run_cli(db_url, standin, "run", extra_env={"GITHUB_ACTIONS": "true",
                                                            "DATABASE_URL": ""})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_help_lists_the_commands(db_url):
    with Standin() as standin:
        result = run_cli(db_url, standin, "--help")
    assert result.returncode == 0
    for command in ("run", "migrate", "users"):
        assert f"    {command} " in result.stdout
