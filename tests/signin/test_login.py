"""`python -m sync login`: the authorization code flow against the local stand-in Spotify.

A test thread plays the browser: it follows the authorize URL to the stand-in, which
redirects (like Spotify's consent page after "Agree") to the local callback server.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import psycopg
import pytest
import requests
import responses

from sync.commands.login import cmd_login
from sync.config import load_settings
from sync.errors import ConfigError, UserError
from sync.job.transform import parse_items
from sync.signin.flow import LoginIO, login
from sync.spotify.oauth import SCOPES, LoginFailed, code_from_pasted_url, parse_redirect_uri
from sync.store import plays as plays_store
from sync.store import runs as runs_store
from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.standin import Standin
from tests.support.store import store_plays

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def standin():
    with Standin() as s:
        s.state.authorize_user = "alice"
        yield s


def make_settings(db_url: str, standin: Standin, redirect: str | None = None, **extra: str):
    env = {
        "DATABASE_URL": db_url,
        "SPOTIFY_CLIENT_ID": standin.state.client_id,
        "SPOTIFY_CLIENT_SECRET": standin.state.client_secret,
        "SPOTIFY_API_URL": standin.api_url,
        "SPOTIFY_ACCOUNTS_URL": standin.base,
        "SPOTIFY_REDIRECT_URI": redirect or f"http://127.0.0.1:{free_port()}/callback",
        **extra,
    }
    return load_settings(env)


class Browser:
    """Follows the authorize URL in a thread, like a browser whose user clicks Agree."""

    def __init__(self, target: str | None = None):
        self.target = target  # visit this instead of the given URL (forged callbacks)
        self.response: requests.Response | None = None
        self.thread: threading.Thread | None = None
        self.opened: list[str] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)

        def visit() -> None:
            self.response = requests.get(self.target or url, timeout=10)

        self.thread = threading.Thread(target=visit, daemon=True)
        self.thread.start()
        return True

    def join(self) -> requests.Response:
        assert self.thread is not None
        self.thread.join(10)
        assert self.response is not None
        return self.response


def make_io(**kw) -> LoginIO:
    defaults = {"out": io.StringIO(), "now": lambda: NOW, "new_state": lambda: "state-0123456789"}
    defaults.update(kw)
    return LoginIO(**defaults)


def user_row(conn: psycopg.Connection, user_id: str = "alice") -> dict | None:
    cur = conn.execute(
        "select id, refresh_token, access_token, access_token_expires_at, scope, authorized_at,"
        " status, status_reason from user_tokens where user_id = %s",
        (user_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def paste_from(standin: Standin, out: io.StringIO):
    """A read_line that does what the person does: open the printed URL, copy where it lands."""

    def read_line(prompt: str) -> str:
        url = re.search(r"https?://\S+/authorize\?\S+", out.getvalue()).group(0)
        answer = requests.get(url, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    return read_line


# -- the whole flow ------------------------------------------------------------------
def test_browser_flow_stores_new_user_with_tokens_scope_and_time(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    browser = Browser()
    out = io.StringIO()
    result = login(settings, io=make_io(out=out, open_browser=browser))

    page = browser.join()
    assert page.status_code == 200 and "Signed in" in page.text
    row = user_row(conn)
    assert result.created and result.user_id == "alice" and result.key == row["id"]
    assert row["refresh_token"] == "standin-refresh-alice-login"
    assert row["access_token"].startswith("standin-access-alice-")
    assert row["access_token_expires_at"] == NOW + timedelta(hours=1)
    assert row["authorized_at"] == NOW
    assert row["scope"] == "user-read-recently-played"
    assert (row["status"], row["status_reason"]) == ("active", None)
    # what the browser was sent to: our app, our redirect URI, the scope, a state
    sent = standin.state.authorize_requests[0]
    assert sent["client_id"] == standin.state.client_id
    assert sent["redirect_uri"] == settings.redirect_uri
    assert sent["scope"] == " ".join(SCOPES)
    assert sent["state"] == "state-0123456789"
    assert sent["response_type"] == "code"
    assert "standin-refresh" not in out.getvalue() and "standin-access" not in out.getvalue()


def test_headless_flow_reads_the_pasted_redirect_address(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    out = io.StringIO()
    opened = []
    result = login(
        settings,
        headless=True,
        io=make_io(out=out, read_line=paste_from(standin, out), open_browser=opened.append),
    )
    assert opened == []  # headless never tries a browser
    assert result.created and user_row(conn)["status"] == "active"
    assert settings.redirect_uri in out.getvalue()  # told where the browser will land


def test_cmd_login_prints_who_and_when_to_sign_in_again_but_no_token(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    out = io.StringIO()
    code = cmd_login(
        settings,
        headless=True,
        io=make_io(out=out, read_line=paste_from(standin, out)),
    )
    text = out.getvalue()
    key = user_row(conn)["id"]
    assert code == 0
    assert f"Signed in as Spotify user alice: added as user-{key}" in text
    assert "2027-05-28" in text  # 6 months after NOW
    assert "standin-refresh" not in text and "standin-access" not in text
    assert "DATABASE_URL is not set" not in text


def test_login_again_clears_needs_reauth_and_keeps_the_key(db_url, conn, standin):
    key = add_user(conn, "alice", "refresh-old-0001", status="needs_reauth",
                   authorized_at=NOW - timedelta(days=200))  # fmt: skip
    conn.execute(
        "update user_tokens set status_reason = 'Refresh token revoked' where id = %s", (key,)
    )
    settings = make_settings(db_url, standin)
    browser = Browser()
    result = login(settings, io=make_io(open_browser=browser))
    browser.join()
    row = user_row(conn)
    assert not result.created
    assert (result.previous_status, result.previous_reason) == (
        "needs_reauth",
        "Refresh token revoked",
    )
    assert row["id"] == key
    assert (row["status"], row["status_reason"]) == ("active", None)
    assert row["refresh_token"] == "standin-refresh-alice-login"
    assert row["authorized_at"] == NOW  # the 6-month clock restarts
    assert [u.user_id for u in runs_store.candidates(conn)] == ["alice"]


def test_login_reactivates_a_removed_user_with_history_intact(db_url, conn, standin):
    key = add_user(conn, "alice", "refresh-old-0001")
    plays, _ = parse_items(window(NOW - timedelta(days=1), 3))
    with conn.transaction():
        store_plays(conn, key, plays)
    conn.execute(
        "update user_tokens set status = 'removed', refresh_token = null where id = %s", (key,)
    )
    assert runs_store.candidates(conn) == []
    settings = make_settings(db_url, standin)
    out = io.StringIO()
    login(settings, headless=True, io=make_io(out=out, read_line=paste_from(standin, out)))
    assert user_row(conn)["status"] == "active"
    assert plays_store.count_plays(conn, key) == 3
    assert [u.key for u in runs_store.candidates(conn)] == [key]


# -- refusals: nothing stored ----------------------------------------------------------
def test_callback_with_a_foreign_state_is_refused(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    forged = settings.redirect_uri + "?" + urlencode({"code": "x", "state": "not-ours"})
    browser = Browser(target=forged)
    with pytest.raises(LoginFailed, match="state"):
        login(settings, io=make_io(open_browser=browser))
    assert browser.join().status_code == 400
    assert user_row(conn) is None
    assert ("POST", "/api/token") not in standin.state.requests  # the code was never used


def test_pasted_address_with_a_foreign_state_is_refused(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    pasted = settings.redirect_uri + "?code=standin-code-1&state=someone-elses"
    with pytest.raises(LoginFailed, match="state"):
        login(settings, headless=True, io=make_io(read_line=lambda _: pasted))
    assert user_row(conn) is None


def test_declined_access_stores_nothing(db_url, conn, standin):
    standin.state.authorize_error = "access_denied"
    settings = make_settings(db_url, standin)
    browser = Browser()
    with pytest.raises(LoginFailed, match="declined") as info:
        login(settings, io=make_io(open_browser=browser))
    assert info.value.exit_code == 1
    assert browser.join().status_code == 400
    assert user_row(conn) is None


def test_declined_access_in_headless_mode(db_url, conn, standin):
    standin.state.authorize_error = "access_denied"
    settings = make_settings(db_url, standin)
    out = io.StringIO()
    with pytest.raises(LoginFailed, match="declined"):
        login(settings, headless=True, io=make_io(out=out, read_line=paste_from(standin, out)))
    assert user_row(conn) is None


def test_localhost_redirect_is_refused_before_anything_else(standin):
    # An unreachable database proves the check comes first.
    settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none", standin, "http://localhost:8888/callback"
    )
    with pytest.raises(ConfigError, match="localhost.*127.0.0.1:8888") as info:
        login(settings, io=make_io(open_browser=Browser()))
    assert info.value.exit_code == 2
    assert standin.state.requests == []


def test_no_answer_from_the_browser_times_out(db_url, conn, standin):
    ticks = iter([0.0, 0.0, 1000.0])
    settings = make_settings(db_url, standin)
    with pytest.raises(LoginFailed, match="no answer from the browser within 300 s"):
        login(
            settings,
            io=make_io(open_browser=lambda url: False, clock=lambda: next(ticks), poll=0.01),
        )
    assert user_row(conn) is None


def test_busy_callback_port_is_reported_before_the_browser_opens(db_url, standin):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = make_settings(db_url, standin, f"http://127.0.0.1:{port}/callback")
        browser = Browser()
        with pytest.raises(UserError, match=f"port {port}.*in use"):
            login(settings, io=make_io(open_browser=browser))
    assert browser.opened == []


def test_used_or_expired_code_is_reported(db_url, conn, standin):
    settings = make_settings(db_url, standin)
    pasted = settings.redirect_uri + "?code=standin-code-999999&state=state-0123456789"
    with pytest.raises(LoginFailed, match="refused the sign-in code"):
        login(settings, headless=True, io=make_io(read_line=lambda _: pasted))
    assert user_row(conn) is None


def test_stdin_closed_in_headless_mode_is_a_usage_error(db_url, standin):
    def closed(prompt: str) -> str:
        raise EOFError

    settings = make_settings(db_url, standin)
    with pytest.raises(UserError, match="no address was pasted") as info:
        login(settings, headless=True, io=make_io(read_line=closed))
    assert info.value.exit_code == 2


@responses.activate
def test_account_not_allow_listed_gets_the_dashboard_fix(db_url, conn):
    responses.post(
        "https://accounts.test/api/token",
        json={"access_token": "acc-123456", "refresh_token": "ref-123456", "expires_in": 3600},
    )
    responses.get(
        "https://api.test/v1/me",
        status=403,
        json={
            "error": {"status": 403, "message": "User not registered in the Developer Dashboard"}
        },
    )
    settings = load_settings({
        "DATABASE_URL": db_url, "SPOTIFY_CLIENT_ID": "cid-123456",
        "SPOTIFY_CLIENT_SECRET": "secret-123456", "SPOTIFY_API_URL": "https://api.test/v1",
        "SPOTIFY_ACCOUNTS_URL": "https://accounts.test",
    })  # fmt: skip
    pasted = settings.redirect_uri + "?code=c&state=state-0123456789"
    with pytest.raises(LoginFailed, match="User Management") as info:
        login(settings, headless=True, io=make_io(read_line=lambda _: pasted))
    assert "ref-123456" not in str(info.value) and "acc-123456" not in str(info.value)
    assert user_row(conn) is None
    sent = parse_qs(responses.calls[0].request.body)
    assert sent["grant_type"] == ["authorization_code"]
    assert sent["redirect_uri"] == [settings.redirect_uri]


@responses.activate
def test_wrong_client_secret_is_a_configuration_error(db_url):
    responses.post(
        "https://accounts.test/api/token",
        status=400,
        json={"error": "invalid_client", "error_description": "Invalid client secret"},
    )
    settings = load_settings({
        "DATABASE_URL": db_url, "SPOTIFY_CLIENT_ID": "cid-123456",
        "SPOTIFY_CLIENT_SECRET": "secret-123456", "SPOTIFY_API_URL": "https://api.test/v1",
        "SPOTIFY_ACCOUNTS_URL": "https://accounts.test",
    })  # fmt: skip
    pasted = settings.redirect_uri + "?code=c&state=state-0123456789"
    with pytest.raises(ConfigError, match="SPOTIFY_CLIENT_SECRET"):
        login(settings, headless=True, io=make_io(read_line=lambda _: pasted))


# -- pure parts -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://localhost:8888/callback", "localhost"),
        ("http://example.com:8888/callback", "loopback"),
        ("http://127.0.0.1/callback", "needs a port"),
        ("ftp://127.0.0.1:8888/callback", "http"),
        ("http://127.0.0.1:notaport/callback", "not a URL"),
    ],
)
def test_redirect_uri_rules(uri, message):
    with pytest.raises(ConfigError, match=message):
        parse_redirect_uri(uri)


def test_redirect_uri_accepts_loopback_ips_and_https():
    assert parse_redirect_uri("http://127.0.0.1:8888/callback").local
    v6 = parse_redirect_uri("http://[::1]:9999/cb")
    assert (v6.host, v6.port, v6.path, v6.local) == ("::1", 9999, "/cb", True)
    assert not parse_redirect_uri("https://example.org/callback").local


def test_pasting_the_authorize_url_by_mistake_is_explained():
    redirect = parse_redirect_uri("http://127.0.0.1:8888/callback")
    with pytest.raises(LoginFailed, match="address to open"):
        code_from_pasted_url("https://accounts.test/authorize?state=s", redirect, "s")
    with pytest.raises(LoginFailed, match="whole address"):
        code_from_pasted_url("AQBcodeonly", redirect, "s")
    assert code_from_pasted_url(" 'http://127.0.0.1:8888/callback?code=k&state=s' ", redirect,
                                "s") == "k"  # fmt: skip


# -- as a user runs it ------------------------------------------------------------
def _env(db_url: str, standin: Standin, redirect: str) -> dict[str, str]:
    return standin.cli_env(
        db_url, drop=("DISPLAY", "WAYLAND", "BROWSER"), SPOTIFY_REDIRECT_URI=redirect
    )


def _read_until_url(proc: subprocess.Popen) -> str:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"https?://\S+/authorize\?\S+", line)
        if found:
            return found.group(0)
    raise AssertionError("no authorize URL printed: " + "".join(lines))


def _login_subprocess(env: dict[str, str], headless: bool, cwd: Path = ROOT):
    """Run `python -m sync login` and act as the person at the keyboard and the browser."""
    args = ["login", "--headless"] if headless else ["login"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _read_until_url(proc)
        if headless:
            location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
            out, err = proc.communicate(location + "\n", timeout=60)
        else:  # no display here: the URL is printed, and this test is the browser
            page = requests.get(url, timeout=10)
            assert page.status_code == 200
            out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


@pytest.mark.parametrize("headless", [True, False])
def test_login_subprocess(db_url, conn, standin, headless):
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    code, out, err = _login_subprocess(_env(db_url, standin, redirect), headless)
    assert code == 0, err
    assert "Signed in as Spotify user alice" in out
    assert user_row(conn)["status"] == "active"
    for stream in (out, err):
        assert "standin-refresh" not in stream and "standin-access" not in stream
        assert standin.state.client_secret not in stream


def test_login_subprocess_on_the_embedded_database(standin, tmp_path):
    env = _env("", standin, f"http://127.0.0.1:{free_port()}/callback")
    del env["DATABASE_URL"]
    env.update(SYNC_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    code, out, err = _login_subprocess(env, headless=True, cwd=tmp_path)
    assert code == 0, err
    assert "added as user-1 to the embedded database" in out
    assert "DATABASE_URL is not set, so the user is stored on this machine only" in out
    users = subprocess.run([sys.executable, "-m", "sync", "users"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert users.returncode == 0, users.stderr
    assert re.search(r"^user-1\s+active\s", users.stdout, re.MULTILINE), users.stdout


def test_cmd_login_says_a_user_needing_reauth_is_active_again(db_url, conn, standin):
    key = add_user(conn, "alice", "refresh-old-0001", status="needs_reauth")
    conn.execute("update user_tokens set status_reason = 'Refresh token revoked'")
    settings = make_settings(db_url, standin)
    out = io.StringIO()
    cmd_login(settings, headless=True,
              io=make_io(out=out, read_line=paste_from(standin, out)))  # fmt: skip
    text = out.getvalue()
    assert f"Signed in again as Spotify user alice (user-{key}): new refresh token stored" in text
    assert "It was needs_reauth (Refresh token revoked) and is active again." in text
