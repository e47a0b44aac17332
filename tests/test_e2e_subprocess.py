"""`python -m sync run` as a subprocess against the local stand-in Spotify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import add_user
from tests.spotify_fakes import window
from tests.standin import Standin

ROOT = Path(__file__).resolve().parent.parent


def run_cli(db_url: str, standin: Standin, *args: str, extra_env: dict | None = None):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_"))
    }
    env.update(
        DATABASE_URL=db_url,
        SPOTIFY_CLIENT_ID=standin.state.client_id,
        SPOTIFY_CLIENT_SECRET=standin.state.client_secret,
        SPOTIFY_API_URL=standin.api_url,
        SPOTIFY_ACCOUNTS_URL=standin.base,
    )
    env.update(extra_env or {})
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
