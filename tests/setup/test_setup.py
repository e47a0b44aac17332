"""`python -m sync setup` end to end: scripted answers, the stand-in Spotify, a real
Postgres and a fake `gh` on PATH that records every command line and stdin."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
import responses
from dotenv import dotenv_values

from sync.cli import build_parser
from sync.commands import options_from
from sync.commands.setup import SetupOptions, cmd_setup
from sync.doctor.checkup import FAIL, OK, WARN
from sync.errors import UserError
from sync.redact import Redactor
from sync.setup.checks import (
    check_reachable_from_github,
    database_checks,
    next_scheduled,
    workflow_cron,
)
from sync.setup.envfile import ensure_ignored, write_env
from sync.setup.prompts import SetupIO, clean_value
from tests.support import fake_gh
from tests.support.setup import (
    CLIENT_ID,
    CLIENT_SECRET,
    DB_PASSWORD,
    NOW,
    FakeTime,
    Person,
    base_env,
    with_password,
)
from tests.support.standin import Standin, StandinState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def standin():
    state = StandinState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with Standin(state) as s:
        s.state.authorize_user = "alice"
        yield s


@pytest.fixture
def gh_bin(tmp_path, monkeypatch) -> Path:
    """The fake gh first on PATH; the test works in an empty directory (its own .env)."""
    bin_dir = fake_gh.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    return bin_dir


def setup(argv: list[str], env: dict[str, str], person: Person | None = None,
          interactive: bool = True, out: io.StringIO | None = None):  # fmt: skip
    out = out or (person.out if person else io.StringIO())
    fake = FakeTime()
    sio = SetupIO(out=out, interactive=interactive, clock=fake.clock, sleep=fake.sleep,
                  now=lambda: NOW, redactor=Redactor())  # fmt: skip
    if person is not None:
        sio.read_line, sio.read_secret = person.line, person.secret
    else:
        sio.read_line = sio.read_secret = _no_prompt
    flags = options_from(SetupOptions, build_parser().parse_args(["setup", *argv]))
    code = cmd_setup(flags, io=sio, env=env)
    return code, out.getvalue(), fake


def _no_prompt(prompt: str) -> str:
    raise AssertionError(f"asked {prompt!r} although every answer was given")


def assert_no_secret(*texts: str, url: str, client_id: bool = False) -> None:
    """The client id is in every sign-in link, so it is checked only where asked (gh argv)."""
    for text in texts:
        for secret in (CLIENT_SECRET, DB_PASSWORD, url, *([CLIENT_ID] if client_id else [])):
            assert secret not in text, f"{secret[:6]}... leaked"


def first_time(standin, gh_bin, db_url, extra_answers=()) -> tuple[int, str, Person, FakeTime]:
    url = with_password(db_url)
    out = io.StringIO()
    person = Person(out, [
        ("Client ID", f'"{CLIENT_ID}"'),  # pasted with quotes
        ("Client secret", "wrong0000000000000000000000000000"),  # refused: asked again
        ("Client ID", CLIENT_ID),
        ("Client secret", f" {CLIENT_SECRET} "),
        ("Connection string", url),
        ("Set the repository secrets", ""),
        ("Enable the workflow", "y"),
        ("Start a run now", ""),
        *extra_answers,
    ])  # fmt: skip
    code, text, fake = setup(["--headless"], base_env(standin), person)
    return code, text, person, fake


# -- the whole first session and a second one -------------------------------------------
def test_first_session_sets_everything_up_and_keeps_secrets_out_of_argv_and_output(
    standin, gh_bin, db_url, capsys
):
    code, text, person, fake = first_time(standin, gh_bin, db_url)
    url = with_password(db_url)
    captured = capsys.readouterr()

    assert code == 0, text  # doctor: nothing blocks syncing
    assert "FAIL  Spotify app: Spotify refused the client id and secret" in text
    assert "ok    Spotify app: client credentials accepted" in text
    assert "Redirect URIs: http://127.0.0.1:8888/callback" in text
    assert "User Management" in text and "Premium" in text
    assert "ok    database: reachable (PostgreSQL" in text
    # .env: the values as given (quotes and spaces dropped), owner-only, ignored by git
    env_file = Path(".env")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert dotenv_values(env_file) == {"DATABASE_URL": url, "SPOTIFY_CLIENT_ID": CLIENT_ID,
                                       "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    assert ".env" in Path(".gitignore").read_text().splitlines()
    # signed in through the stand-in
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select user_id, status from user_tokens").fetchall() == [
            ("alice", "active")
        ]
    assert "Signed in as Spotify user alice" in text
    # gh: secrets on stdin, workflow enabled, a run started and waited for with a deadline
    calls = fake_gh.calls(gh_bin)
    sets = {c["argv"][2]: c["stdin"] for c in calls if c["argv"][:2] == ["secret", "set"]}
    assert sets == {"DATABASE_URL": url, "SPOTIFY_CLIENT_ID": CLIENT_ID,
                    "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
    assert ["workflow", "enable", "sync.yml"] in [c["argv"] for c in calls]
    assert ["workflow", "run", "sync.yml"] in [c["argv"] for c in calls]
    assert "first run: success. Its summary: https://github.com/someone/" in text
    assert fake.sleeps and sum(fake.sleeps) <= 600
    # doctor and the next scheduled time (NOW is 19:53 UTC, cron minute 17)
    assert "doctor: nothing blocks syncing" in text
    assert "Next scheduled run: 2026-11-29 20:17 UTC (in 23 min" in text
    # no secret in any gh command line, in what was printed, or in stdout/stderr
    for call in calls:
        assert_no_secret(" ".join(call["argv"]), url=url, client_id=True)
    assert_no_secret(text, captured.out, captured.err, url=url)


def test_second_session_checks_and_skips_what_is_done(standin, gh_bin, db_url):
    first_time(standin, gh_bin, db_url)
    before = len(fake_gh.calls(gh_bin))
    env = {**base_env(standin), **dotenv_values(".env")}  # the CLI loads .env like this
    out = io.StringIO()
    person = Person(out, [])  # everything is done: no question at all
    code, text, _ = setup(["--headless"], env, person)

    assert code == 0, text
    assert person.prompts == [] and "?" not in text.split("5/5")[0].replace("Which API/SDKs", "")
    assert "done: ok    user-1: active" in text
    assert "done: the repository has the secrets" in text
    assert "done: the workflow sync.yml is enabled" in text
    assert "done: the latest run succeeded" in text
    later = [c["argv"][:2] for c in fake_gh.calls(gh_bin)[before:]]
    assert ["secret", "set"] not in later and ["workflow", "run"] not in later
    assert ["workflow", "enable"] not in later
    assert "Signed in" not in text and "already up to date" in text


def test_a_rerun_does_what_is_done_again_only_when_a_flag_asks(standin, gh_bin, db_url):
    first_time(standin, gh_bin, db_url)
    before = len(fake_gh.calls(gh_bin))
    env = {**base_env(standin), **dotenv_values(".env")}
    out = io.StringIO()
    person = Person(out, [])  # the flags are the answers: nothing is asked
    code, text, _ = setup(["--headless", "--sign-in", "--replace-secrets", "--new-run"], env,
                          person)  # fmt: skip
    assert code == 0, text
    assert "Signed in again as Spotify user alice" in text
    later = [c["argv"][:2] for c in fake_gh.calls(gh_bin)[before:]]
    assert later.count(["secret", "set"]) == 3 and ["workflow", "run"] in later
    assert [p for p in person.prompts if "Paste the address" not in p] == []


def test_a_rerun_with_a_new_value_in_env_asks_to_replace_the_secrets(standin, gh_bin, db_url):
    first_time(standin, gh_bin, db_url)
    before = len(fake_gh.calls(gh_bin))
    other = with_password(db_url).replace(DB_PASSWORD, DB_PASSWORD + "2")
    env = {**base_env(standin), **dotenv_values(".env")}
    person = Person(io.StringIO(), [("DATABASE_URL changed in .env: replace", "")])
    setup(["--database-url", other], env, person)
    sets = {c["argv"][2]: c["stdin"] for c in fake_gh.calls(gh_bin)[before:]
            if c["argv"][:2] == ["secret", "set"]}  # fmt: skip
    assert sets["DATABASE_URL"] == other and not person.answers


def test_unattended_with_flags_and_environment_asks_nothing(standin, gh_bin, db_url):
    url = with_password(db_url)
    env = base_env(standin, SPOTIFY_CLIENT_SECRET=f"'{CLIENT_SECRET}'", DATABASE_URL=url)
    code, text, _ = setup(["--client-id", CLIENT_ID, "--yes", "--skip-login"], env,
                          interactive=False)  # fmt: skip
    assert code == 1  # doctor: nobody to sync yet
    assert "sign-in skipped (--skip-login)" in text
    assert "FAIL  users: none to sync yet" in text
    assert "first run: success" in text
    assert dotenv_values(".env")["SPOTIFY_CLIENT_SECRET"] == CLIENT_SECRET


def test_refused_values_from_env_are_asked_for_again_in_a_terminal(standin, gh_bin, db_url):
    placeholder = re.sub(r"//postgres:?@", "//postgres:[YOUR-PASSWORD]@", db_url, count=1)
    assert "[YOUR-PASSWORD]" in placeholder  # embedded URLs read postgres:@
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET="0" * 32,
                   DATABASE_URL=placeholder)  # fmt: skip
    out = io.StringIO()
    person = Person(out, [("Client ID", CLIENT_ID), ("Client secret", CLIENT_SECRET),
                          ("Connection string", db_url)])  # fmt: skip
    code, text, _ = setup(["--skip-login", "--no-github"], env, person)
    assert "FAIL  Spotify app: Spotify refused" in text
    assert "FAIL  DATABASE_URL: still holds Supabase's [YOUR-PASSWORD] placeholder" in text
    assert not person.answers and dotenv_values(".env")["SPOTIFY_CLIENT_SECRET"] == CLIENT_SECRET
    assert "--no-github. Do this part in the browser" in text
    assert code == 1  # nobody signed in


def test_the_readme_test_does_not_run_setup():
    from tests.test_readme_commands import plan

    assert plan("python -m sync setup").argv is None


# -- without gh, gh not signed in, a run that takes too long -------------------------------
def test_without_gh_prints_the_secrets_table_and_links(standin, db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   DATABASE_URL=db_url)  # fmt: skip
    code, text, _ = setup(["--skip-login"], env, interactive=False)
    assert "The GitHub CLI (gh) is not installed" in text
    assert "Settings > Secrets and variables > Actions" in text
    for name in ("DATABASE_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"):
        assert re.search(rf"\| {name} +\| {name} in \.env", text), name
    assert "/actions/workflows/sync.yml" in text


def test_gh_not_signed_in_or_declined_falls_back_to_the_table(standin, gh_bin, db_url):
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   DATABASE_URL=db_url)  # fmt: skip
    state = json.loads((gh_bin / "state.json").read_text())
    (gh_bin / "state.json").write_text(json.dumps({**state, "auth": False}))
    _, text, _ = setup(["--skip-login", "--yes"], env, interactive=False)
    assert "gh is installed but not signed in (gh auth login)" in text
    (gh_bin / "state.json").write_text(json.dumps(state))
    _, text, _ = setup(["--skip-login"], env, interactive=False)  # no --yes, no terminal
    assert "Secrets not set. Do this part in the browser" in text
    assert not [c for c in fake_gh.calls(gh_bin) if c["argv"][:2] == ["secret", "set"]]


def test_waiting_for_the_first_run_stops_at_the_deadline(standin, gh_bin, db_url):
    state = json.loads((gh_bin / "state.json").read_text())
    (gh_bin / "state.json").write_text(json.dumps({**state, "polls_to_finish": 10**6}))
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   DATABASE_URL=db_url)  # fmt: skip
    _, text, fake = setup(["--skip-login", "--yes", "--wait", "2m"], env, interactive=False)
    assert sum(fake.sleeps) == 120
    assert "the run is still in_progress after 120 s" in text
    assert "gh run watch 1000" in text


# -- no terminal and a value missing ----------------------------------------------------------
def _subprocess_setup(args: list[str], env: dict[str, str], cwd: Path):
    env = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sync", "setup", *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("given", "flag"),
    [({}, "--client-id"),
     ({"SPOTIFY_CLIENT_ID": CLIENT_ID}, "--client-secret"),
     ({"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}, "--database-url")],
)  # fmt: skip
def test_no_terminal_and_no_value_exits_2_naming_the_flag(standin, tmp_path, given, flag):
    done = _subprocess_setup([], base_env(standin, **given), tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and flag in errors[0]
    assert "stdin is not a terminal" in errors[0]
    assert CLIENT_SECRET not in done.stdout + done.stderr
    assert not (tmp_path / ".env").exists()


def test_subprocess_run_with_fake_gh_keeps_secrets_out_of_everything(standin, db_url, tmp_path):
    bin_dir = fake_gh.install(tmp_path / "bin")
    url = with_password(db_url)
    env = base_env(standin, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET, DATABASE_URL=url,
                   SPOTIFY_REFRESH_TOKEN=CLIENT_SECRET, GH_TOKEN="gh-own-token",
                   PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    state = json.loads((bin_dir / "state.json").read_text())
    (bin_dir / "state.json").write_text(json.dumps({**state, "polls_to_finish": 0}))
    work = tmp_path / "repo"
    work.mkdir()
    done = _subprocess_setup(["--client-id", CLIENT_ID, "--yes", "--skip-login"], env, work)
    assert done.returncode == 1, done.stderr  # nobody signed in yet: doctor says so
    assert "first run: success" in done.stdout
    assert stat.S_IMODE((work / ".env").stat().st_mode) == 0o600
    calls = fake_gh.calls(bin_dir)
    assert len([c for c in calls if c["argv"][:2] == ["secret", "set"]]) == 3
    assert_no_secret(done.stdout, done.stderr, url=url)
    assert_no_secret(*(" ".join(c["argv"]) for c in calls), url=url, client_id=True)
    # gh's environment: no secret (the CLI has them in its own, from env or .env); its token stays
    assert all(c["env"].get("GH_TOKEN") == "gh-own-token" for c in calls)
    assert_no_secret(*(json.dumps(c["env"]) for c in calls), url=url)


def test_wrong_secret_without_a_terminal_is_refused_with_the_reason(standin, tmp_path):
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET="0" * 32)
    done = _subprocess_setup([], env, tmp_path)
    assert done.returncode == 2
    assert "Spotify refused the client id and secret" in done.stderr


# -- the embedded database ----------------------------------------------------------------
def test_embedded_database_is_for_trying_out_and_skips_github(standin, gh_bin, tmp_path):
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   SYNC_DATA_DIR=str(tmp_path / "data"), PATH=os.environ["PATH"])  # fmt: skip
    done = _subprocess_setup(["--database-url", "embedded", "--skip-login", "--yes"], env,
                             Path.cwd())  # fmt: skip
    assert done.returncode == 1, done.stderr  # nobody signed in
    assert "using the embedded Postgres" in done.stdout + done.stderr
    assert "GitHub Actions cannot see it" in done.stdout
    assert "skipped: the embedded database is on this machine" in done.stdout, done.stderr
    assert dotenv_values(".env")["DATABASE_URL"] == ""
    assert fake_gh.calls(gh_bin) == []


# -- the pieces -------------------------------------------------------------------------
def test_clean_value_drops_one_pair_of_quotes_and_refuses_inner_spaces():
    assert clean_value("X", ' "abc" ') == "abc"
    assert clean_value("X", "'abc'") == "abc"
    assert clean_value("X", '"abc') == '"abc'
    with pytest.raises(UserError, match="X contains a space"):
        clean_value("X", "ab c")


def test_write_env_keeps_other_lines_and_makes_the_file_private(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# mine\nSYNC_SHOW_USER_IDS=true\nDATABASE_URL=old\n")
    path.chmod(0o644)
    url = "postgresql://u:p%40ss#x@h:5432/db"
    assert write_env(path, {"DATABASE_URL": url, "SPOTIFY_CLIENT_ID": "abc"}) == [
        "DATABASE_URL", "SPOTIFY_CLIENT_ID"]  # fmt: skip
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# mine\nSYNC_SHOW_USER_IDS=true\n")
    assert dotenv_values(path) == {"SYNC_SHOW_USER_IDS": "true", "DATABASE_URL": url,
                                   "SPOTIFY_CLIENT_ID": "abc"}  # fmt: skip
    assert write_env(path, {"SPOTIFY_CLIENT_ID": "abc"}) == []


def test_ensure_ignored_adds_env_only_when_missing(tmp_path):
    (tmp_path / ".gitignore").write_text(".venv/\n")
    assert ensure_ignored(tmp_path) is True
    assert ensure_ignored(tmp_path) is False
    assert (tmp_path / ".gitignore").read_text() == ".venv/\n.env\n"
    assert ensure_ignored(ROOT) is False  # the repository's own .gitignore has it


def _checks(url: str, **kw) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.line()) for c in database_checks({}, url, **kw)}


def test_database_url_mistakes_are_named_with_their_fix():
    placeholder = (
        "postgresql://postgres.abc:[YOUR-PASSWORD]@aws-0.pooler.supabase.com:5432/postgres"
    )
    assert "[YOUR-PASSWORD] placeholder" in _checks(placeholder)["DATABASE_URL"][1]
    status, line = _checks("postgresql://postgres.abc:p@ss/w:rd@h.example.org:5432/postgres")[
        "DATABASE_URL"]  # fmt: skip
    assert status == FAIL and "'@' and '/'" in line and "%40" in line and "p@ss" not in line
    status, line = _checks("postgresql://u:pw@aws-0.pooler.supabase.com:6543/postgres")[
        "DATABASE_URL"]  # fmt: skip
    assert status == FAIL and "transaction pooler" in line and "5432" in line
    assert _checks("postgresql://u:p%40ss@h.example.org:5432/db")["DATABASE_URL"][0] == OK


def test_unreachable_database_fails_with_the_driver_reason():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    status, line = _checks(f"postgresql://u:{DB_PASSWORD}@127.0.0.1:{port}/db")["database"]
    assert status == FAIL and "cannot connect to the database" in line
    assert DB_PASSWORD not in line


def build_settings(url: str):
    from sync.config import load_settings

    return load_settings({"DATABASE_URL": url})


def _resolver(*addresses: str) -> Callable[..., list]:
    def resolve(host, port, *rest):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, 1, 6, "", (a, port))
                for a in addresses]  # fmt: skip

    return resolve


@pytest.mark.parametrize(
    ("addresses", "status", "words"),
    [(("2a05:d014::1",), WARN, "IPv6 addresses only"),
     (("2a05:d014::1", "3.64.1.2"), OK, "public IPv4"),
     (("10.0.0.5",), WARN, "private network"),
     (("127.0.0.1",), WARN, "on this machine")],
)  # fmt: skip
def test_database_host_must_be_reachable_from_githubs_ipv4_runners(addresses, status, words):
    settings = build_settings("postgresql://u@db.abcdefgh.supabase.co:5432/postgres")
    check = check_reachable_from_github(settings, resolve=_resolver(*addresses))
    assert check.status == status and words in check.detail


def test_next_scheduled_run_comes_from_the_workflows_cron():
    assert workflow_cron() == "17 * * * *"
    assert next_scheduled("17 * * * *", NOW) == datetime(2026, 11, 29, 20, 17, tzinfo=UTC)
    at_10 = NOW.replace(minute=10)
    assert next_scheduled("17 * * * *", at_10) == NOW.replace(minute=17, second=0)
    on_the_dot = NOW.replace(minute=17, second=0)
    assert next_scheduled("17 * * * *", on_the_dot) == datetime(2026, 11, 29, 20, 17, tzinfo=UTC)
    assert next_scheduled("*/5 * * * *", NOW) is None


# -- issue 16: one wording for port 6543 -------------------------------------------------
POOLER_URL = f"postgresql://postgres.abc:{DB_PASSWORD}@aws-0-eu.pooler.supabase.com:6543/postgres"


def test_port_6543_is_said_the_same_by_run_doctor_and_setup(standin, gh_bin, capsys):
    from sync.cli import main
    from sync.config.urlcheck import transaction_pooler_problem
    from sync.doctor.checkup import run_doctor

    problem = transaction_pooler_problem(POOLER_URL)
    assert problem is not None and "session-level advisory lock migrate takes" in problem.detail
    assert "leases" not in problem.detail and "per user" not in problem.detail
    said = f"{problem.detail} -> fix: {problem.fix}"  # doctor's and setup's line, after the name

    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   DATABASE_URL=POOLER_URL)  # fmt: skip
    out = io.StringIO()
    assert run_doctor(env, out) == 1
    doctor_line = next(line for line in out.getvalue().splitlines() if "6543" in line)
    with pytest.raises(UserError) as setup_error:
        setup([], env, interactive=False)
    os.environ["DATABASE_URL"] = POOLER_URL  # what the CLI's run reads (the .env loaded)
    try:
        assert main(["run"]) == 2
    finally:
        del os.environ["DATABASE_URL"]
    run_line = capsys.readouterr().err.strip()

    assert doctor_line == f"FAIL  DATABASE_URL: {said}"
    assert str(setup_error.value) == f"DATABASE_URL: {said}"
    assert run_line == f"error: {problem.message()}"
    assert problem.message() == f"DATABASE_URL {problem.detail}: {problem.fix}"
    assert DB_PASSWORD not in doctor_line + str(setup_error.value) + run_line


# -- issue 16: empty answers, offline checks, errors without a terminal ---------------------
def _spotify_step(person: Person, env: dict[str, str]):
    from sync.commands.setup import spotify_step

    sio = SetupIO(out=person.out, interactive=True, read_line=person.line,
                  read_secret=person.secret, now=lambda: NOW, redactor=Redactor())  # fmt: skip
    return spotify_step(sio, SetupOptions(), env)


OFFLINE_ENV = {
    "SPOTIFY_ACCOUNTS_URL": "https://accounts.test",
    "SPOTIFY_API_URL": "https://api.test/v1",
}
TOKEN_URL = "https://accounts.test/api/token"
TOKEN = {"access_token": "app-token", "token_type": "Bearer", "expires_in": 3600}


@responses.activate
def test_empty_client_id_is_asked_again_and_offline_offers_to_check_again():
    responses.post(TOKEN_URL, body=requests.ConnectionError("network is unreachable"))
    responses.post(TOKEN_URL, json=TOKEN)
    answers = [("Client ID", ""), ("Client ID", CLIENT_ID), ("Client secret", CLIENT_SECRET),
               ("Check again", "")]  # fmt: skip
    person = Person(io.StringIO(), answers)
    assert _spotify_step(person, OFFLINE_ENV) == (CLIENT_ID, CLIENT_SECRET)
    text = person.out.getvalue()
    assert "SPOTIFY_CLIENT_ID is needed: paste it and press Enter" in text
    assert "FAIL  Spotify app: could not reach" in text and "ok: checked" in text
    assert [p.split(":")[0].strip() for p in person.prompts] == [
        "Client ID", "Client ID", "Client secret (input hidden)", "Check again? [Y/n]"]  # fmt: skip
    assert len(responses.calls) == 2


@responses.activate
def test_offline_spotify_check_can_be_skipped_keeping_the_values():
    responses.post(TOKEN_URL, body=requests.ConnectionError("network is unreachable"))
    person = Person(io.StringIO(), [("Client ID", CLIENT_ID), ("Client secret", CLIENT_SECRET),
                                    ("Check again", "n")])  # fmt: skip
    assert _spotify_step(person, OFFLINE_ENV) == (CLIENT_ID, CLIENT_SECRET)
    assert "kept unchecked: doctor checks them again at the end" in person.out.getvalue()
    assert not person.answers and len(person.prompts) == 3  # the id was not asked again


def test_a_refusal_without_a_terminal_is_one_line_with_one_prefix(standin, tmp_path):
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET="0" * 32)
    done = _subprocess_setup([], env, tmp_path)
    assert done.returncode == 2
    both = done.stdout + done.stderr
    assert both.count("Spotify refused the client id and secret") == 1, both
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert error.startswith("error: Spotify app: Spotify refused the client id and secret")
    assert "FAIL" not in error and error.count("Spotify app") == 1


def test_programs_setup_starts_inherit_no_secret_while_it_runs(monkeypatch):
    from sync.setup.prompts import child_env, secrets_out_of_environ

    secret_names = ("DATABASE_URL", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REFRESH_TOKEN", "PGPASSWORD")
    for name in (*secret_names, "GH_TOKEN", "SPOTIFY_CLIENT_ID"):
        monkeypatch.setenv(name, f"value-of-{name}")
    assert set(secret_names).isdisjoint(child_env(os.environ))
    with secrets_out_of_environ():  # what webbrowser and pg_ctl inherit
        assert set(secret_names).isdisjoint(os.environ)
        assert os.environ["GH_TOKEN"] == "value-of-GH_TOKEN"
        assert os.environ["SPOTIFY_CLIENT_ID"] == "value-of-SPOTIFY_CLIENT_ID"
    assert os.environ["SPOTIFY_CLIENT_SECRET"] == "value-of-SPOTIFY_CLIENT_SECRET"


def test_first_setup_sums_the_migrations_up_in_one_line(standin, gh_bin, empty_db_url, caplog):
    caplog.set_level(logging.INFO, logger="sync")
    _, text, _, _ = first_time(standin, gh_bin, empty_db_url)
    from sync.db.schema import migrations

    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if m.startswith("applied")], logged
    (line,) = [line for line in text.splitlines() if line.startswith("  tables:")]
    assert re.fullmatch(r"  tables: \d+ migrations applied", line)
    assert int(line.split()[1]) >= len(migrations())  # numbered and repeatable files


def test_a_silent_database_is_tried_once_then_asked_for_again(
    standin, gh_bin, db_url, monkeypatch, caplog
):
    from sync import db
    from tests.db.test_embedded_paths import Silent

    monkeypatch.setattr(db, "CONNECT_DEADLINE", 0.3)  # 10 s outside tests
    monkeypatch.setattr(db, "CONNECT_PATIENCE", 0.05)
    caplog.set_level(logging.INFO, logger="sync")
    silent = Silent()
    try:
        env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET)
        quiet = f"postgresql://me:{DB_PASSWORD}@127.0.0.1:{silent.port}/db"
        person = Person(io.StringIO(), [("Connection string", quiet),
                                        ("Connection string", db_url)])  # fmt: skip
        code, text, _ = setup(["--skip-login", "--no-github"], env, person)
        assert len(silent.held) == 1  # one try, not one per retry
    finally:
        silent.close()
    assert not person.answers
    (line,) = [line for line in text.splitlines() if "no answer from the database" in line]
    assert line.startswith(f"  FAIL  database: no answer from the database at 127.0.0.1:"
                           f"{silent.port} within 0.3 s")  # fmt: skip
    assert "Session pooler" in line and DB_PASSWORD not in text
    assert f"connecting to 127.0.0.1:{silent.port} ..." in caplog.messages
    assert dotenv_values(".env")["DATABASE_URL"] == db_url


def test_declined_consent_points_at_setup_not_login(standin, gh_bin, db_url):
    standin.state.authorize_error = "access_denied"
    env = base_env(standin, SPOTIFY_CLIENT_ID=CLIENT_ID, SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
                   DATABASE_URL=db_url)  # fmt: skip
    person = Person(io.StringIO(), [])
    with pytest.raises(UserError) as err:
        setup(["--headless"], env, person)
    message = str(err.value)
    assert "declined" in message and "run python -m sync setup again" in message, message
    assert "sync login" not in message
