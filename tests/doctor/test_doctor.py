"""`python -m sync doctor`: one line per check, the fix when it fails, exit 1 when blocked."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
import responses

from sync.doctor.checkup import (
    FAIL,
    OK,
    WARN,
    check_settings,
    diagnose,
    run_doctor,
)
from sync.spotify.client import SpotifyClient
from tests.conftest import add_user
from tests.support.standin import Standin, StandinState

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def standin():
    with Standin(StandinState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as s:
        yield s


def env_for(db_url: str, standin: Standin | None = None, **extra: str) -> dict[str, str]:
    env = {"DATABASE_URL": db_url, "SPOTIFY_CLIENT_ID": CLIENT_ID,
           "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    if standin is not None:
        env.update(SPOTIFY_API_URL=standin.api_url, SPOTIFY_ACCOUNTS_URL=standin.base)
    env.update(extra)
    return env


def add_run(conn, finished_at: datetime, status: str = "ok", trigger: str = "schedule") -> int:
    return conn.execute(
        """insert into sync_runs (started_at, finished_at, status, trigger, users_total,
                  users_synced, users_failed, users_skipped, tracks_added)
           values (%s, %s, %s, %s, 1, %s, %s, 0, 7) returning id""",
        (finished_at - timedelta(seconds=20), finished_at, status, trigger,
         1 if status == "ok" else 0, 0 if status == "ok" else 1),
    ).fetchone()[0]  # fmt: skip


def doctor(env, **kw) -> tuple[int, str]:
    out = io.StringIO()
    code = run_doctor(env, out, now=lambda: NOW, **kw)
    return code, out.getvalue()


def by_name(checks, name):
    return [c for c in checks if c.name == name]


# -- settings ----------------------------------------------------------------------
def test_well_formed_settings_are_all_ok():
    checks, settings = check_settings(env_for("postgresql://u:pw@db.example.org:5432/postgres"))
    assert settings is not None
    assert [(c.status, c.name) for c in checks] == [
        (OK, "DATABASE_URL"),
        (OK, "SPOTIFY_CLIENT_ID"),
        (OK, "SPOTIFY_CLIENT_SECRET"),
        (OK, "SPOTIFY_REDIRECT_URI"),
        (OK, "SYNC_NOTIFY"),
    ]
    assert checks[0].detail == "set (db.example.org:5432/postgres)"  # no password


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({}, "on, but not here"),
        (
            {"GITHUB_TOKEN": "ghs_x123456", "GITHUB_REPOSITORY": "me/history"},
            "issues in me/history",
        ),
        ({"SYNC_NOTIFY": "off", "GITHUB_TOKEN": "ghs_x123456"}, "off:"),
    ],
)
def test_doctor_says_which_way_the_owner_s_inbox_is_set(extra, words):
    checks, _ = check_settings({**env_for("postgresql://u:pw@db.example.org/postgres"), **extra})
    assert words in by_name(checks, "SYNC_NOTIFY")[0].detail


def test_missing_spotify_credentials_fail_with_where_to_find_them():
    checks, _ = check_settings({"DATABASE_URL": "postgresql://u@h/db"})
    missing = [c for c in checks if c.status == FAIL]
    assert [c.name for c in missing] == ["SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"]
    assert all("developer dashboard" in c.fix for c in missing)
    assert "-> fix: copy it from your app" in missing[0].line()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://postgres:[YOUR-PASSWORD]@db.abc.supabase.co:5432/postgres", "YOUR-PASS"),
        ("postgresql://postgres.abc:pw@aws-0-eu.pooler.supabase.com:6543/postgres", "session"),
    ],
)
def test_common_supabase_mistakes_fail(url, words):
    checks, _ = check_settings(env_for(url))
    line = by_name(checks, "DATABASE_URL")[0]
    assert line.status == FAIL
    assert words in line.line()
    assert by_name(checks, "SPOTIFY_CLIENT_SECRET")[0].status == OK  # the rest still checked


def test_unparseable_settings_are_reported_not_crashed():
    checks, settings = check_settings({"DATABASE_URL": "mysql://u@h/db"})
    assert settings is None
    assert (checks[0].status, checks[0].name) == (FAIL, "DATABASE_URL")
    assert "postgresql://" in checks[0].fix


def test_actions_without_database_url_names_the_secret():
    checks, _ = check_settings({"GITHUB_ACTIONS": "true"})
    assert checks[0].status == FAIL and "DATABASE_URL secret" in checks[0].detail


def test_embedded_database_and_odd_values_warn_only():
    checks, _ = check_settings({
        "SPOTIFY_CLIENT_ID": CLIENT_ID[:-1], "SPOTIFY_CLIENT_SECRET": '"' + CLIENT_SECRET + '"',
        "SPOTIFY_REDIRECT_URI": "http://localhost:8888/callback",
    })  # fmt: skip
    statuses = {c.name: c.status for c in checks}
    assert statuses == {
        "DATABASE_URL": WARN,  # embedded: fine locally, not for Actions
        "SPOTIFY_CLIENT_ID": WARN,  # truncated copy
        "SPOTIFY_CLIENT_SECRET": OK,  # surrounding quotes are dropped, as every command does
        "SPOTIFY_REDIRECT_URI": WARN,  # localhost: only login cares
        "SYNC_NOTIFY": OK,  # on; issues come from the workflow
    }


# -- the whole diagnosis against Postgres and the stand-in ----------------------------------
def test_healthy_setup_is_all_ok_and_exits_0(db_url, conn, standin):
    add_user(conn, "alice", authorized_at=NOW - timedelta(days=10))
    conn.execute("update user_tokens set scope = 'user-read-recently-played'")
    add_run(conn, NOW - timedelta(minutes=40))
    code, out = doctor(env_for(db_url, standin))
    lines = out.splitlines()
    assert code == 0, out
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in lines[:-1]]
    assert names == [
        "DATABASE_URL",
        "SPOTIFY_CLIENT_ID",
        "SPOTIFY_CLIENT_SECRET",
        "SPOTIFY_REDIRECT_URI",
        "SPOTIFY_API_URL",
        "SPOTIFY_ACCOUNTS_URL",
        "SYNC_NOTIFY",
        "database",
        "migrations",
        "row level security",
        "Spotify app",
        "user-1",
        "last run",
    ]  # fmt: skip  (the documented order)
    assert all(line.startswith(OK) for line in lines[:-1]), out
    assert "client credentials accepted" in out
    assert "refresh token good for 171 more days" in out
    assert "40 min ago" in out and "ok, 1 of 1 users synced" in out
    assert lines[-1] == "doctor: nothing blocks syncing (0 warnings)"
    assert ("POST", "/api/token") in standin.state.requests
    assert CLIENT_SECRET not in out


def test_user_needing_reauth_blocks_with_the_reason_and_the_fix(db_url, conn, standin):
    key = add_user(conn, "alice", status="needs_reauth")
    conn.execute("update user_tokens set status_reason = 'Refresh token revoked' where id = %s",
                 (key,))  # fmt: skip
    add_run(conn, NOW - timedelta(minutes=5))
    code, out = doctor(env_for(db_url, standin))
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith(f"FAIL  user-{key}:"))
    assert "needs to sign in again (Refresh token revoked)" in line
    assert "python -m sync login" in line


@pytest.mark.parametrize(
    ("authorized_days_ago", "status", "text"),
    [
        (170, WARN, "refresh token expires in"),
        (200, FAIL, "passed Spotify's 6-month limit"),
    ],
)
def test_refresh_token_expiry(db_url, conn, standin, authorized_days_ago, status, text):
    add_user(conn, "alice", authorized_at=NOW - timedelta(days=authorized_days_ago))
    add_run(conn, NOW - timedelta(minutes=5))
    checks = diagnose(env_for(db_url, standin), now=lambda: NOW)
    line = by_name(checks, "user-1")[0]
    assert line.status == status and text in line.detail


def test_token_without_the_scope_blocks(db_url, conn, standin):
    add_user(conn, "alice")
    conn.execute("update user_tokens set scope = 'user-read-private'")
    checks = diagnose(env_for(db_url, standin), now=lambda: NOW)
    line = by_name(checks, "user-1")[0]
    assert line.status == FAIL and "user-read-recently-played" in line.detail


def test_no_users_blocks(db_url, standin):
    code, out = doctor(env_for(db_url, standin))
    assert code == 1
    assert "FAIL  users: none to sync yet -> fix: python -m sync login" in out


def test_stale_last_run_explains_why_schedules_stop(db_url, conn, standin):
    add_user(conn, "alice", authorized_at=NOW - timedelta(days=1))
    add_run(conn, NOW - timedelta(hours=3))
    code, out = doctor(env_for(db_url, standin))
    line = next(x for x in out.splitlines() if x.startswith("FAIL  last run:"))
    assert code == 1
    assert "2026-11-28 09:00 UTC (3 h ago, schedule)" in line
    for reason in ("fork", "60 days", "secret"):
        assert reason in line


def test_failed_last_run_warns_with_what_failed(db_url, conn, standin):
    key = add_user(conn, "alice", authorized_at=NOW - timedelta(days=1))
    run_id = add_run(conn, NOW - timedelta(minutes=30), status="failed")
    conn.execute(
        "insert into sync_run_users (run_id, user_id, status, error_class) "
        "values (%s, %s, 'failed', 'TemporaryError')",
        (run_id, key),
    )
    code, out = doctor(env_for(db_url, standin))
    line = next(x for x in out.splitlines() if "last run" in x)
    assert code == 0
    assert line.startswith(WARN) and "1 TemporaryError" in line


def test_no_run_yet_warns(db_url, conn, standin):
    add_user(conn, "alice", authorized_at=NOW - timedelta(days=1))
    checks = diagnose(env_for(db_url, standin), now=lambda: NOW)
    line = by_name(checks, "last run")[0]
    assert line.status == WARN and "Run workflow" in line.fix


def test_table_without_row_level_security_is_named_with_the_sql(db_url, conn, standin):
    conn.execute("alter table tracks disable row level security")
    checks = diagnose(env_for(db_url, standin), now=lambda: NOW)
    line = by_name(checks, "row level security")[0]
    assert line.status == WARN
    assert "off on tracks" in line.detail
    assert line.fix == "alter table tracks enable row level security"


def test_database_without_tables_blocks_and_says_migrate(empty_db_url, standin):
    code, out = doctor(env_for(empty_db_url, standin))
    assert code == 1
    assert "FAIL  migrations: the database has no tables yet -> fix: python -m sync migrate" in out
    assert "nothing blocks syncing" not in out
    with psycopg.connect(empty_db_url) as c:  # doctor only reads
        assert c.execute("select to_regclass('user_tokens')").fetchone()[0] is None


def test_partly_migrated_database_lists_pending_migrations(empty_db_url, standin, tmp_path):
    from sync.db import schema

    first = schema.migrations()[0][1]
    (tmp_path / first.name).write_text(first.read_text())
    with psycopg.connect(empty_db_url) as c:  # only the first file applied
        schema.migrate(c, sql_dir=tmp_path)
    checks = diagnose(env_for(empty_db_url, standin), now=lambda: NOW)
    line = by_name(checks, "migrations")[0]
    assert line.status == WARN and "002" in line.detail and "python -m sync migrate" in line.fix
    with psycopg.connect(empty_db_url) as c:  # doctor only reads
        assert c.execute("select to_regclass('listening_days')").fetchone()[0] is None


def test_unreachable_database_blocks_and_skips_what_needs_it(standin):
    code, out = doctor(env_for("postgresql://nobody@127.0.0.1:1/none", standin))
    assert code == 1
    assert "FAIL  database: cannot connect to the database" in out
    assert "skip  users, last run: not checked: the database is not reachable" in out
    assert "ok    Spotify app" in out  # still checked: it needs no database


def test_wrong_client_secret_blocks(db_url, conn):
    wrong = StandinState(client_id=CLIENT_ID, client_secret="0" * 32)
    with Standin(wrong) as standin:
        checks = diagnose(env_for(db_url, standin), now=lambda: NOW)
    line = by_name(checks, "Spotify app")[0]
    assert line.status == FAIL
    assert "invalid_client" in line.detail and "Rotate client secret" in line.fix


@responses.activate
def test_spotify_unreachable_blocks(db_url):
    responses.post("https://accounts.test/api/token", body=requests.ConnectionError("down"))
    client = SpotifyClient("https://api.test/v1", "https://accounts.test", CLIENT_ID,
                           CLIENT_SECRET, max_retries=1, sleep=lambda s: None)  # fmt: skip
    checks = diagnose(env_for(db_url, SPOTIFY_ACCOUNTS_URL="https://accounts.test"),
                      client=client, now=lambda: NOW)  # fmt: skip
    line = by_name(checks, "Spotify app")[0]
    assert line.status == FAIL and "could not reach" in line.detail


def test_doctor_subprocess_exit_codes_and_no_secrets(db_url, conn, standin):
    def run(env_extra: dict[str, str]):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
        env.update(env_extra)
        return subprocess.run([sys.executable, "-m", "sync", "doctor"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    broken = run({"DATABASE_URL": "mysql://u:hunter2-secret@h/db"})
    assert broken.returncode == 1, broken.stderr
    assert broken.stdout.startswith("FAIL  DATABASE_URL: is not a valid connection string")
    assert "hunter2-secret" not in broken.stdout + broken.stderr
    add_user(conn, "alice", authorized_at=datetime.now(UTC) - timedelta(days=1))
    add_run(conn, datetime.now(UTC) - timedelta(minutes=3))
    healthy = run(env_for(db_url, standin))
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "nothing blocks syncing" in healthy.stdout
    assert CLIENT_SECRET not in healthy.stdout + healthy.stderr


# -- connection strings as pasted, and old servers ----------------------------------------
def test_password_characters_that_need_url_encoding_are_named_not_shown():
    url = "postgresql://postgres.abc:p@ss/w:rd#1@h.example.org:5432/postgres"
    checks, settings = check_settings(env_for(url))
    assert settings is None
    line = by_name(checks, "DATABASE_URL")[0].line()
    assert line.startswith("FAIL") and "'@' and '/' and '#'" in line and "%40" in line
    assert "p@ss" not in line and "w:rd" not in line
    for fine in ("postgresql://u:p%40ss@h.example.org:5432/db", "postgresql://u@h/db"):
        assert by_name(check_settings(env_for(fine))[0], "DATABASE_URL")[0].status == OK


def test_fixes_name_the_embedded_database_when_database_url_is_unset(monkeypatch, empty_db_url,
                                                                    standin):  # fmt: skip
    env = env_for("", standin)
    del env["DATABASE_URL"]
    env["SYNC_DATA_DIR"] = "/srv/shs-data"
    checks = diagnose(env, database_url=lambda s: empty_db_url, now=lambda: NOW)
    line = by_name(checks, "migrations")[0]
    assert (line.status, line.detail) == (FAIL, "the embedded database in /srv/shs-data/ has no "
                                                "tables yet")  # fmt: skip
    assert "Supabase" not in line.fix


def test_login_fix_names_the_embedded_database(conn):
    from pathlib import Path as P

    from sync.doctor.users import check_users

    add_user(conn, "alice", status="needs_reauth")
    line = check_users(conn, NOW, embedded_dir=P(".data"))[0]
    assert line.status == FAIL and "embedded database in .data/" in line.fix
    assert "DATABASE_URL pointing" in check_users(conn, NOW)[0].fix


def test_doctor_reports_a_run_that_was_killed(conn):
    from sync.doctor.users import check_last_run

    conn.execute(
        "insert into sync_runs (status, started_at, alive_until) "
        "values ('running', now() - interval '30 minutes', now() - interval '1 minute')"
    )
    check = check_last_run(conn, datetime.now(UTC))
    assert check.status == WARN and "never finished: killed" in check.detail
    conn.execute("update sync_runs set alive_until = now() + interval '10 minutes'")
    assert check_last_run(conn, datetime.now(UTC)).detail.endswith("running now")
