"""Sign-in links (sync.signin.link): signed state, stable text, checks without storage."""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from sync.cli import main
from sync.config import load_settings
from sync.errors import UserError
from sync.job.tokens import refresh_token_expires_at
from sync.signin.flow import LoginIO
from sync.signin.link import LinkRefused, check_state, link_expiry, sign_in_link
from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.standin import Standin

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def settings(**extra: str):
    env = {
        "SPOTIFY_CLIENT_ID": "client-abc",
        "SPOTIFY_CLIENT_SECRET": "secret-xyz",
        **extra,
    }
    return load_settings(env)


def state_of(url: str) -> str:
    return parse_qs(urlparse(url).query)["state"][0]


def test_link_is_spotifys_authorize_url_for_the_loopback_redirect():
    url, _ = sign_in_link(settings(), 1, NOW)
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == (
        "https://accounts.spotify.com/authorize"
    )
    assert query["client_id"] == ["client-abc"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8888/callback"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["user-read-recently-played"]
    assert "secret-xyz" not in url


def test_state_round_trips_subject_and_new():
    s = settings()
    for subject in (1, 7, 123456):
        url, _ = sign_in_link(s, subject, NOW)
        assert check_state(s, state_of(url), NOW) == subject
    url, _ = sign_in_link(s, None, NOW)
    assert ".new." in state_of(url)
    assert check_state(s, state_of(url), NOW) is None


def test_link_text_is_stable_within_a_period_and_valid_15_to_30_days():
    s = settings()
    period = timedelta(days=15)
    start = datetime.fromtimestamp((int(NOW.timestamp()) // 1296000) * 1296000, UTC)
    first, expires = sign_in_link(s, 3, start)
    assert expires == start + 2 * period
    late, late_expires = sign_in_link(s, 3, start + period - timedelta(seconds=1))
    assert (late, late_expires) == (first, expires)
    nxt, nxt_expires = sign_in_link(s, 3, start + period)
    assert nxt != first and nxt_expires == expires + period
    for moment in (NOW, start, start + period - timedelta(seconds=1)):
        left = link_expiry(moment) - moment
        assert period < left <= 2 * period


def test_expired_state_refused_with_its_date():
    s = settings()
    url, expires = sign_in_link(s, 2, NOW)
    state = state_of(url)
    assert check_state(s, state, expires - timedelta(seconds=1)) == 2
    with pytest.raises(LinkRefused, match=f"expired on {expires:%Y-%m-%d}"):
        check_state(s, state, expires)


def test_state_for_another_app_refused():
    url, _ = sign_in_link(settings(SPOTIFY_CLIENT_ID="other-app"), 1, NOW)
    with pytest.raises(LinkRefused, match="another app"):
        check_state(settings(), state_of(url), NOW)


def test_state_made_with_another_client_secret_refused():
    url, _ = sign_in_link(settings(SPOTIFY_CLIENT_SECRET="another-secret"), 1, NOW)
    with pytest.raises(LinkRefused, match="signature does not match"):
        check_state(settings(), state_of(url), NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda parts: parts[:2] + ["2"] + parts[3:],  # another user
        lambda parts: parts[:2] + ["new"] + parts[3:],  # a new person instead
        lambda parts: parts[:3] + [str(int(parts[3]) + 86400)] + parts[4:],  # longer life
        lambda parts: parts[:4] + [("A" if parts[4][0] != "A" else "B") + parts[4][1:]],
    ],
)
def test_tampered_state_refused(change):
    s = settings()
    url, _ = sign_in_link(s, 1, NOW)
    forged = ".".join(change(state_of(url).split(".")))
    with pytest.raises(LinkRefused, match="signature does not match"):
        check_state(s, forged, NOW)


@pytest.mark.parametrize(
    "state",
    ["", "abc", "v2.x.1.1.y", "v1..1.1.", "v1.abcdefgh.0.1800000000." + "A" * 43,
     "v1.abcdefgh.-1.1800000000." + "A" * 43, "v1.abcdefgh.1.1800000000." + "A" * 44],
)  # fmt: skip
def test_malformed_state_refused(state):
    with pytest.raises(LinkRefused, match="malformed") as info:
        check_state(settings(), state, NOW)
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_subject_must_be_a_user_key():
    with pytest.raises(ValueError):
        sign_in_link(settings(), 0, NOW)


# -- end to end: the link, the browser, `login --redirect-url` -----------------------
@pytest.fixture
def standin():
    with Standin() as s:
        s.state.authorize_user = "alice"
        yield s


@pytest.fixture
def cli(monkeypatch, tmp_path, db_url, standin, capsys):
    """main([...]) in-process against the stand-in Spotify and db_url; returns a runner."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "RUNNER_")) or name in (
            "DATABASE_URL",
            "CI",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in standin.cli_env(db_url).items():
        if name.startswith("SPOTIFY_") or name == "DATABASE_URL":
            monkeypatch.setenv(name, value)
    root = logging.getLogger()  # main() installs its own log handler
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def link_from(out: str) -> str:
    return re.search(r"https?://\S+/authorize\?\S+", out).group(0)


def land(link: str) -> str:
    """What the person does on the phone: open the link, Agree, copy where it lands."""
    answer = requests.get(link, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def rows(conn) -> list[tuple]:
    return conn.execute("select * from user_tokens order by id").fetchall()


def settings_of(standin: Standin, **extra: str):
    return load_settings({
        "SPOTIFY_CLIENT_ID": standin.state.client_id,
        "SPOTIFY_CLIENT_SECRET": standin.state.client_secret,
        "SPOTIFY_ACCOUNTS_URL": standin.base, **extra,
    })  # fmt: skip


def needs_reauth_alice(conn) -> int:
    key = add_user(conn, "alice", "refresh-old-0001", status="needs_reauth",
                   authorized_at=datetime.now(UTC) - timedelta(days=200))  # fmt: skip
    conn.execute("update user_tokens set status_reason = 'Refresh token revoked'")
    return key


def assert_quiet(standin: Standin, *streams: str, code: str = "") -> None:
    for text in streams:  # GitHub hides its ::add-mask:: commands (main masks the secrets)
        stream = "\n".join(x for x in text.splitlines() if not x.startswith("::add-mask::"))
        assert "standin-refresh" not in stream and "standin-access" not in stream
        assert standin.state.client_secret not in stream
        assert "Traceback" not in stream
        if code:
            assert code not in stream


def test_link_then_redirect_url_signs_the_user_in_again(cli, conn, standin):
    key = needs_reauth_alice(conn)
    status, out, _ = cli("login", "--link", f"user-{key}")
    assert status == 0
    link = link_from(out)
    assert "http://127.0.0.1:8888/callback" in out and "sign_in" in out
    assert "gh workflow run sync.yml -f sign_in=" in out and "--redirect-url" in out
    sent = parse_qs(urlparse(link).query)
    assert sent["redirect_uri"] == ["http://127.0.0.1:8888/callback"]
    assert check_state(settings_of(standin), sent["state"][0], datetime.now(UTC)) == key

    landed = land(link)
    code = parse_qs(urlparse(landed).query)["code"][0]
    status, out, err = cli("login", "--redirect-url", landed)
    assert status == 0, err
    row = conn.execute(
        "select refresh_token, status, status_reason, authorized_at from user_tokens where id = %s",
        (key,),
    ).fetchone()
    assert row[:3] == ("standin-refresh-alice-login", "active", None)
    assert datetime.now(UTC) - row[3] < timedelta(minutes=5)  # the 6-month clock restarts
    assert len(out.strip().splitlines()) == 1
    assert f"Signed in user-{key} again (was needs_reauth, active again)" in out
    assert f"Spotify ends this sign-in on {refresh_token_expires_at(row[3]):%Y-%m-%d}." in out
    assert_quiet(standin, out, err, code=code)


def test_in_github_actions_the_address_and_code_are_masked_first(cli, conn, standin, monkeypatch):
    key = needs_reauth_alice(conn)
    landed = land(link_from(cli("login", "--link", "alice")[1]))
    code = parse_qs(urlparse(landed).query)["code"][0]
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    status, out, err = cli("login", "--redirect-url", landed)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[:2] == [f"::add-mask::{landed}", f"::add-mask::{code}"]
    rest = "\n".join(lines[2:])
    assert f"Signed in user-{key} again" in rest
    assert "alice" not in rest  # the alias, not the Spotify id, in public logs
    assert_quiet(standin, rest, err, code=code)


def test_in_github_actions_an_address_that_is_no_url_is_still_masked(
    cli, conn, standin, monkeypatch
):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    status, out, err = cli("login", "--redirect-url", "AQBsomething-pasted-wrong")
    assert status == 2
    assert out.splitlines()[0] == "::add-mask::AQBsomething-pasted-wrong"
    assert err.splitlines()[-1].startswith("error: that is not a URL")


def test_redirect_url_from_stdin(cli, conn, standin, monkeypatch):
    key = needs_reauth_alice(conn)
    landed = land(link_from(cli("login", "--link", f"user-{key}")[1]))
    monkeypatch.setattr(sys, "stdin", io.StringIO(landed + "\n"))
    status, out, err = cli("login", "--redirect-url", "-")
    assert status == 0, err
    assert conn.execute("select status from user_tokens").fetchone()[0] == "active"


def test_empty_stdin_is_refused(cli, conn, monkeypatch):
    needs_reauth_alice(conn)
    before = rows(conn)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, _, err = cli("login", "--redirect-url", "-")
    assert status == 2 and err.startswith("error: --redirect-url -: nothing on stdin")
    assert rows(conn) == before


def test_new_link_adds_a_new_person(cli, conn, standin):
    needs_reauth_alice(conn)
    standin.state.authorize_user = "bob"
    status, out, _ = cli("login", "--link", "new")
    assert status == 0 and "a new person" in out
    status, out, err = cli("login", "--redirect-url", land(link_from(out)))
    assert status == 0, err
    row = conn.execute("select id, status from user_tokens where user_id = 'bob'").fetchone()
    assert row[1] == "active"
    assert f"Signed in user-{row[0]}: added as a new user" in out


def test_new_link_for_a_stored_account_refreshes_it(cli, conn, standin):
    key = needs_reauth_alice(conn)
    landed = land(link_from(cli("login", "--link", "new")[1]))
    status, out, err = cli("login", "--redirect-url", landed)
    assert status == 0, err
    assert conn.execute("select id, status from user_tokens").fetchall() == [(key, "active")]


def test_a_different_spotify_account_is_refused(cli, conn, standin):
    key = needs_reauth_alice(conn)
    before = rows(conn)
    link = link_from(cli("login", "--link", f"user-{key}")[1])
    standin.state.authorize_user = "bob"  # someone else is signed in on that phone
    status, out, err = cli("login", "--redirect-url", land(link))
    assert status == 2
    assert err.startswith(f"error: this sign-in link is for user-{key}, but another Spotify")
    assert "bob" not in err and len(err.splitlines()) == 1
    assert rows(conn) == before


def _bad_inputs():
    """name -> how to make the pasted text from (standin, key, genuine link)."""

    def swapped_state(state_settings):
        def make(standin, key, link):
            url = land(link)
            code = parse_qs(urlparse(url).query)["code"][0]
            forged, _ = sign_in_link(state_settings(standin), key, datetime.now(UTC))
            state = parse_qs(urlparse(forged).query)["state"][0]
            return url.split("?")[0] + "?" + urlencode({"code": code, "state": state})

        return make

    def tampered(standin, key, link):
        url = land(link)
        return url.replace(f".{key}.", f".{key + 1}.")

    def expired(standin, key, link):
        old, _ = sign_in_link(settings_of(standin), key, datetime.now(UTC) - timedelta(days=31))
        return land(old)

    def declined(standin, key, link):
        standin.state.authorize_error = "access_denied"
        return land(link)

    def no_code(standin, key, link):
        url = land(link)
        state = parse_qs(urlparse(url).query)["state"][0]
        return url.split("?")[0] + "?" + urlencode({"state": state})

    def no_state(standin, key, link):
        return land(link).split("&state=")[0]

    return {
        "not a URL": (lambda standin, key, link: "hello there", "not a URL"),
        "the link itself": (lambda standin, key, link: link, "the sign-in link itself"),
        "declined": (declined, "the sign-in was declined"),
        "no code": (no_code, "holds no code"),
        "no state": (no_state, "holds no state"),
        "another client id": (
            swapped_state(lambda s: settings_of(s, SPOTIFY_CLIENT_ID="another-client")),
            "another app",
        ),
        "another client secret": (
            swapped_state(lambda s: settings_of(s, SPOTIFY_CLIENT_SECRET="another-secret-01")),
            "signature does not match",
        ),
        "tampered": (tampered, "signature does not match"),
        "expired": (expired, "expired on"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_bad_input_exits_2_and_changes_nothing(cli, conn, standin, case):
    make, message = _bad_inputs()[case]
    key = needs_reauth_alice(conn)
    before = rows(conn)
    link = link_from(cli("login", "--link", f"user-{key}")[1])
    pasted = make(standin, key, link)
    status, out, err = cli("login", "--redirect-url", pasted)
    assert status == 2, (out, err)
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert rows(conn) == before
    assert ("POST", "/api/token") not in standin.state.requests  # no code was spent
    assert_quiet(standin, out, err)


def test_a_used_code_is_refused_the_second_time(cli, conn, standin):
    key = needs_reauth_alice(conn)
    landed = land(link_from(cli("login", "--link", f"user-{key}")[1]))
    assert cli("login", "--redirect-url", landed)[0] == 0
    conn.execute("update user_tokens set refresh_token = 'refresh-later-0002'")
    after_first = rows(conn)
    status, out, err = cli("login", "--redirect-url", landed)
    assert status == 2
    assert err.startswith("error: Spotify refused the code: each address works once")
    assert rows(conn) == after_first
    assert_quiet(standin, out, err)


def test_link_for_a_removed_user_is_refused(cli, conn):
    key = add_user(conn, "alice", "refresh-old-0001", status="removed")
    status, out, err = cli("login", "--link", f"user-{key}")
    assert status == 2 and "was removed" in err and "--link new" in err
    assert "authorize" not in out


def test_link_for_an_unknown_user_is_refused(cli, conn):
    status, _, err = cli("login", "--link", "user-9")
    assert status == 2 and "no user 'user-9'" in err


def test_a_link_whose_user_was_removed_meanwhile_is_refused(cli, conn, standin):
    key = needs_reauth_alice(conn)
    landed = land(link_from(cli("login", "--link", f"user-{key}")[1]))
    conn.execute("update user_tokens set status = 'removed', refresh_token = null")
    before = rows(conn)
    status, _, err = cli("login", "--redirect-url", landed)
    assert status == 2 and f"user-{key}, who was removed" in err
    assert rows(conn) == before


def test_link_and_redirect_url_exclude_each_other(cli):
    status, _, err = cli("login", "--link", "new", "--redirect-url", "x")
    assert status == 2 and "not allowed with" in err


def test_a_link_redeemed_after_its_expiry_is_refused(cli, conn, standin, monkeypatch):
    from sync.commands import login as login_command

    key = needs_reauth_alice(conn)
    status, out, _ = cli("login", "--link", f"user-{key}")
    expires = re.search(r"valid until (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC", out)[1]
    landed = land(link_from(out))
    before = rows(conn)
    later = datetime.strptime(expires, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    monkeypatch.setattr(login_command, "LoginIO", functools.partial(LoginIO, now=lambda: later))
    status, _, err = cli("login", "--redirect-url", landed)
    assert status == 2 and f"expired on {expires}" in err
    assert rows(conn) == before
    assert ("POST", "/api/token") not in standin.state.requests


def test_an_overlapping_runs_older_token_cannot_overwrite_the_sign_in(cli, conn, standin):
    key = needs_reauth_alice(conn)
    conn.execute("update user_tokens set status = 'active', status_reason = null")
    landed = land(link_from(cli("login", "--link", f"user-{key}")[1]))
    assert cli("login", "--redirect-url", landed)[0] == 0
    signed_in = rows(conn)
    # A run that began with the old token finishes its refresh (or its refusal) now.
    now = datetime.now(UTC)
    with conn.transaction():
        assert not user_store.save_tokens(
            conn, key, "refresh-old-0001", "access-late-0001", now, "refresh-late-0001", None
        )
        assert not user_store.mark_needs_reauth(conn, key, "refresh-old-0001", "revoked")
    assert rows(conn) == signed_in


def test_an_older_overlapping_sign_in_does_not_replace_a_newer_one(cli, conn, standin):
    key = needs_reauth_alice(conn)
    link = link_from(cli("login", "--link", f"user-{key}")[1])
    first = land(link)  # this run exchanges slowly; another sign-in overtakes it
    later = datetime.now(UTC) + timedelta(minutes=1)
    with conn.transaction():  # the second finished first, authorized later
        conn.execute(
            "update user_tokens set status = 'active', refresh_token = 'refresh-newer-0002', "
            "authorized_at = %s where id = %s",
            (later, key),
        )
    newer = rows(conn)
    status, _, err = cli("login", "--redirect-url", first)
    assert status == 1 and "a newer sign-in of this account was stored meanwhile" in err
    assert rows(conn) == newer
