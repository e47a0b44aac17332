"""No secret reaches any output: tokens, the client secret and the database password stay out
of stdout, stderr (except `::add-mask::` lines), the step summary and the run tables."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

from sync.redact import RedactingFilter, Redactor
from tests.conftest import add_user
from tests.support import standin as standin_module
from tests.support.spotify_fakes import window
from tests.support.standin import Standin
from tests.support.sync_helpers import CLIENT_SECRET, CliRunner
from tests.system.test_e2e_subprocess import run_cli

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DB_PASSWORD = "Db-Pa55word-9f8e7d"


class _RefusingHandler(standin_module._Handler):
    """The stand-in, refusing recently-played (403) for users listed in state.refused."""

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.server.state.access_tokens.get(token) in getattr(self.server.state, "refused", ()):
            self._begin()
            return self._send(403, {"error": {"status": 403, "message": "User not registered"}})
        return super().do_GET()


def _with_password(url: str) -> tuple[str, str]:
    """The test database URL with a password in it (trust auth ignores it)."""
    parts = urlparse(url)
    if parts.password:
        return url, parts.password
    user = parts.username or "postgres"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunparse(parts._replace(netloc=f"{user}:{DB_PASSWORD}@{host}")), DB_PASSWORD


def _outside_masks(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))


def test_whole_job_leaks_no_secret(db_url, conn, tmp_path):
    """Refresh with rotation, a reused access token, invalid_grant, a failing user; under
    GitHub Actions with a step summary and verbose logging."""
    url, password = _with_password(db_url)
    with Standin() as spotify:
        spotify._server.RequestHandlerClass = _RefusingHandler
        state = spotify.state
        state.rotate = True
        state.refused = {"carol"}
        for user in ("alice", "carol"):
            add_user(conn, user, f"standin-refresh-{user}-0")
            state.refresh_tokens[f"standin-refresh-{user}-0"] = user
            state.plays[user] = window(NEWEST, 20)
        add_user(conn, "bob", "standin-refresh-bob-revoked")  # unknown: invalid_grant
        dave_access = state.issue_access("dave")
        add_user(conn, "dave", "standin-refresh-dave-0", access_token=dave_access,
                 expires_at=datetime.now(UTC) + timedelta(minutes=30))  # fmt: skip
        state.plays["dave"] = window(NEWEST, 5)
        initial_refresh = set(state.refresh_tokens) | {
            "standin-refresh-bob-revoked",
            "standin-refresh-dave-0",
        }
        summary = tmp_path / "summary.md"
        result = run_cli(
            url, spotify, "-v", "run", "--json",
            extra_env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
                       "GITHUB_RUN_ID": "9", "GITHUB_REPOSITORY": "me/shs"},
        )  # fmt: skip
        access_tokens = set(state.access_tokens)
        refresh_tokens = initial_refresh | set(state.refresh_tokens)
    rotated = set(state.refresh_tokens) - initial_refresh
    assert rotated, "the run should have rotated alice's and carol's refresh tokens"
    assert result.returncode == 1, result.stderr  # bob newly needs re-auth, carol failed
    statuses = [u["status"] for u in json.loads(result.stdout)["users"]]
    assert statuses == ["ok", "failed", "needs_reauth", "ok"]

    secrets = access_tokens | refresh_tokens | {state.client_secret, password}
    tables = "\n".join(
        str(row)
        for sql in (
            "select error, warnings, error_class from sync_run_users",
            "select run_url, trigger, status from sync_runs",
            "select status_reason from user_tokens",
        )
        for row in conn.execute(sql)
    )
    outputs = {
        "stdout": result.stdout,
        "stderr": _outside_masks(result.stderr),
        "summary": summary.read_text(),
        "run tables": tables,
    }
    assert outputs["summary"] and outputs["stderr"] and "NeedsReauth" in tables
    for where, text in outputs.items():
        leaked = [s for s in secrets if s in text]
        assert leaked == [], f"{where} leaks {len(leaked)} secret(s)"

    # Every token obtained at run time was masked, before the user's log group opened.
    lines = result.stderr.splitlines()
    for token in (access_tokens - {dave_access}) | rotated:
        assert f"::add-mask::{token}" in lines, token
    alice_mask = next(
        i for i, x in enumerate(lines) if x.startswith("::add-mask::standin-access-alice")
    )
    alice_group = lines.index("::group::user-1: ok")
    assert alice_mask < alice_group
    assert f"::add-mask::{state.client_secret}" in lines
    assert f"::add-mask::{password}" in lines


def test_error_text_echoing_a_token_is_scrubbed_everywhere(monkeypatch, capsys, tmp_path,
                                                          db_url, conn, spotify):  # fmt: skip
    run = CliRunner(monkeypatch, capsys, tmp_path, db_url)
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))

    def echo_token(user):  # a misbehaving server quoting the bearer token back
        token = next(t for t, u in spotify.access_tokens.items() if u == user)
        spotify.data_queue[user] = [
            (400, {"error": {"status": 400, "message": f"bad token {token}"}}, {})
        ]

    spotify.before_data = echo_token
    summary = run.actions()
    result = run("run", "--json")
    token = spotify.issued[0]
    assert result.code == 1
    error = conn.execute("select error from sync_run_users").fetchone()[0]
    assert "bad token ***" in error
    with open(summary) as fh:
        texts = [result.out, _outside_masks(result.err), fh.read(), error]
    assert all(token not in text for text in texts)
    assert f"::add-mask::{token}" in result.err.splitlines()
    assert CLIENT_SECRET not in result.out + _outside_masks(result.err)


def test_masks_come_before_any_other_output_of_the_token(monkeypatch, capsys, tmp_path,
                                                         db_url, conn, spotify):  # fmt: skip
    run = CliRunner(monkeypatch, capsys, tmp_path, db_url)
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))
    spotify.rotate.add("alice")
    run.actions()
    result = run("run")
    lines = result.err.splitlines()
    for token in spotify.issued + ["refresh-alice-0001", CLIENT_SECRET]:
        first = next(i for i, line in enumerate(lines) if token in line)
        assert lines[first] == f"::add-mask::{token}"


def test_no_masks_outside_github_actions(monkeypatch, capsys, tmp_path, db_url, conn, spotify):
    run = CliRunner(monkeypatch, capsys, tmp_path, db_url)
    add_user(conn, "alice", "refresh-alice-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 3))
    result = run("run")
    assert "::add-mask::" not in result.err
    assert all(token not in result.err for token in spotify.issued)


def test_redacting_log_filter_scrubs_registered_secrets():
    stream = io.StringIO()
    redactor = Redactor(github_actions=True, stream=stream)
    redactor.protect("tok-abcdef-123")
    redactor.protect("abc")  # too short to mask safely: ignored
    assert stream.getvalue() == "::add-mask::tok-abcdef-123\n"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("tests.privacy.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("refresh answered with %s", "tok-abcdef-123")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "refresh answered with ***\n"


def test_redaction_among_thousands_of_secrets_masks_each_whole_longest_first():
    """A run registers every user's tokens; each line is checked against those starting
    in it (issue 9: the old check sorted and tried every secret for every log line)."""
    redactor = Redactor()
    secrets = [f"tok{n:05d}-" + "x" * (20 + n % 7) for n in range(5000)]
    for value in secrets:
        redactor.protect(value)
    redactor.protect("tok00042-xxxxx")  # a secret inside a longer one
    redactor.protect("ffffff")  # overlapping the end of the next
    text = f"a {secrets[42]} b {secrets[4999]}{secrets[7]} c tok00042-xxxxx ffffff{secrets[0]}"
    assert redactor.redact(text) == "a *** b ****** c *** ******"
    assert redactor.redact(secrets[3]) == "***"
    assert redactor.redact("nothing secret here") == "nothing secret here"
