"""`python -m sync` in-process: exit codes, --json, log lines, GitHub annotations and step
summary, aliases, run records, `users`, and one-line errors for bad configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sync.store import users as user_store
from tests.conftest import add_user
from tests.support.spotify_fakes import window
from tests.support.sync_helpers import CliRunner

NEWEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
UNUSED_DB = "postgresql://postgres@127.0.0.1:1/unused"
FORBIDDEN = (403, {"error": {"status": 403, "message": "User not registered in the app"}}, {})


@pytest.fixture
def bare(monkeypatch, capsys, tmp_path):
    """No test database, for errors found before one is opened (the URL is never reached)."""
    return CliRunner(monkeypatch, capsys, tmp_path, UNUSED_DB)


@pytest.fixture
def four_users(conn, spotify, db_url):
    """alice syncs, bob's token is revoked, carol is refused (403), dave is locked elsewhere."""
    add_user(conn, "alice", "refresh-alice-0001")
    add_user(conn, "bob", "refresh-bob-revoked")
    add_user(conn, "carol", "refresh-carol-0001")
    dave = add_user(conn, "dave", "refresh-dave-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 7))
    spotify.add_user("carol", "refresh-carol-0001", window(NEWEST, 3))
    spotify.add_user("dave", "refresh-dave-0001", window(NEWEST, 3))
    spotify.data_queue["carol"] = [FORBIDDEN]
    with psycopg.connect(db_url, autocommit=True) as other_run:
        user_store.claim(other_run, dave, 999, timedelta(minutes=15))  # another live run
        yield


def _one_line_error(result) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 2
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.err
    return lines[0]


# -- --json and exit codes ------------------------------------------------------
def test_json_has_the_documented_keys_and_statuses(run, four_users):
    result = run("run", "--json")
    report = result.report
    assert {"users_total", "users_synced", "users_failed", "tracks_added", "duration_s",
            "users"} <= set(report)  # fmt: skip
    assert (report["users_total"], report["users_synced"], report["users_failed"]) == (4, 1, 1)
    assert report["tracks_added"] == 7
    assert isinstance(report["duration_s"], float)
    for user in report["users"]:
        assert {"user_id", "status", "new_tracks", "fetched", "skipped_items",
                "error"} <= set(user)  # fmt: skip
    statuses = [(u["user_id"], u["status"]) for u in report["users"]]
    assert statuses == [("user-1", "ok"), ("user-2", "needs_reauth"), ("user-3", "failed"),
                        ("user-4", "skipped")]  # fmt: skip
    alice, bob, carol, dave = report["users"]
    assert (alice["new_tracks"], alice["fetched"], alice["error"]) == (7, 7, None)
    assert "invalid_grant" in bob["error"]
    assert "403" in carol["error"]
    assert dave["error"].startswith("another run is syncing this user (until ")
    assert result.out.count("\n") == 1  # exactly one JSON object, nothing else on stdout


def test_exit_code_0_when_all_synced_even_with_warnings(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001",
             authorized_at=datetime.now(UTC) - timedelta(days=175))  # fmt: skip
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    result = run("run", "--json")
    assert result.code == 0
    assert result.report["users"][0]["warnings"]


def test_exit_code_1_when_a_user_fails(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 2))
    spotify.data_queue["bob"] = [FORBIDDEN]
    result = run("run")
    assert result.code == 1
    assert "user-2: failed" in result.err
    assert "user-1: ok, 2 new of 2 fetched" in result.err


def test_exit_code_1_only_on_the_run_that_finds_a_revoked_token(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-revoked")
    assert run("run").code == 1
    later = run("run")
    assert later.code == 0
    assert "user-1: warning: needs to sign in again" in later.err


def test_no_users_needs_no_spotify_credentials(run):
    run.env(SPOTIFY_CLIENT_ID=None, SPOTIFY_CLIENT_SECRET=None)
    result = run("run", "--json")
    assert result.code == 0, result.err
    assert result.report["users_total"] == 0


def test_run_applies_migrations_first(monkeypatch, capsys, tmp_path, empty_db_url):
    run = CliRunner(monkeypatch, capsys, tmp_path, empty_db_url)
    result = run("run", "--json")
    assert result.code == 0, result.err
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("select count(*) from sync_runs").fetchone()[0] == 1


# -- log, annotations, step summary -------------------------------------------------
def test_github_actions_log_groups_annotations_and_summary(run, four_users):
    summary_path = run.actions()
    result = run("run")
    lines = result.err.splitlines()
    groups = [line for line in lines if line.startswith("::group::")]
    assert sorted(groups) == ["::group::user-1: ok", "::group::user-2: needs_reauth",
                              "::group::user-3: failed", "::group::user-4: skipped"]  # fmt: skip
    assert lines.count("::endgroup::") == 4
    assert any(line.startswith("::error title=user-2::") for line in lines)  # newly revoked
    assert any(line.startswith("::error title=user-3::") for line in lines)
    assert any(line.startswith("sync finished: 1/4 users synced") for line in lines)
    with open(summary_path) as fh:
        summary = fh.read()
    assert "| users | synced | failed | need re-auth | skipped | new plays | duration |" in summary
    assert "| 4 | 1 | 1 | 1 | 1 | 7 |" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| user-")]
    assert len(rows) == 4
    assert rows[0].startswith("| user-1 | ✅ ok | 7 | 7 | 0 |")
    assert "needs_reauth" in rows[1] and "failed" in rows[2] and "skipped" in rows[3]
    assert "https://github.example/someone/spotify-history/actions/runs/4242" in summary


def test_later_runs_annotate_needs_reauth_as_a_warning(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-revoked")
    run("run")
    run.actions()
    result = run("run")
    assert result.code == 0
    assert any(line.startswith("::warning title=user-1::") for line in result.err.splitlines())
    assert "::error" not in result.err


def test_no_annotations_or_groups_outside_github_actions(run, four_users):
    result = run("run")
    assert "::" not in result.err


def test_aliases_by_default_and_real_ids_when_asked(run, four_users, spotify):
    summary_path = run.actions()
    hidden = run("run", "--json")
    with open(summary_path) as fh:
        summary = fh.read()
    log = "\n".join(x for x in hidden.err.splitlines() if not x.startswith("::add-mask::"))
    for name in ("alice", "bob", "carol", "dave"):  # (test tokens hold names: masks excluded)
        assert name not in log and name not in hidden.out and name not in summary
    run.env(SYNC_SHOW_USER_IDS="true")
    shown = run("run", "--json")
    assert [u["user_id"] for u in shown.report["users"]] == ["alice", "bob", "carol", "dave"]
    assert "alice: ok" in shown.err
    with open(summary_path) as fh:
        assert "| alice |" in fh.read()


def test_no_track_album_or_artist_names_are_printed(run, four_users):
    summary_path = run.actions()
    result = run("run", "--json")
    with open(summary_path) as fh:
        everything = result.out + result.err + fh.read()
    for word in ("Song ", "Album ", "Artist "):
        assert word not in everything


def test_run_records_counts_status_error_class_and_run_url(run, four_users, conn):
    run.actions()
    run("run")
    run_row = conn.execute(
        "select status, trigger, run_url, finished_at is not null, users_total, users_synced, "
        "users_failed, users_skipped, tracks_added, dry_run from sync_runs"
    ).fetchone()
    assert run_row == ("failed", "schedule",
                       "https://github.example/someone/spotify-history/actions/runs/4242",
                       True, 4, 1, 1, 1, 7, False)  # fmt: skip
    users = conn.execute(
        "select u.user_id, r.status, r.fetched, r.new_tracks, r.error_class, "
        "r.started_at is not null, r.finished_at is not null "
        "from sync_run_users r join user_tokens u on u.id = r.user_id order by u.id"
    ).fetchall()
    assert users == [
        ("alice", "ok", 7, 7, None, True, True),
        ("bob", "needs_reauth", 0, 0, "NeedsReauth", True, True),
        ("carol", "failed", 0, 0, "Forbidden", True, True),
        ("dave", "skipped", 0, 0, None, True, True),
    ]


def test_a_run_without_actions_has_no_run_url(run, spotify, conn):
    run("run")
    assert conn.execute("select trigger, run_url, status from sync_runs").fetchone() == (
        "manual",
        None,
        "ok",
    )


# -- users -----------------------------------------------------------------------
def test_users_lists_alias_status_last_sync_plays_and_token_expiry(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001",
             authorized_at=datetime(2026, 9, 1, tzinfo=UTC))  # fmt: skip
    add_user(conn, "bob", "refresh-bob-revoked", authorized_at=datetime(2026, 10, 5, tzinfo=UTC))
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 6))
    run("run")
    result = run("users")
    assert result.code == 0
    lines = result.out.strip().splitlines()
    assert lines[0].split() == ["user", "status", "last", "ok", "sync", "plays", "refresh",
                                "token", "expires"]  # fmt: skip
    alice, bob = lines[1].split(), lines[2].split()
    assert alice[0:2] == ["user-1", "active"]
    assert alice[-2:] == ["6", "2027-03-01"]
    assert bob[0:2] == ["user-2", "needs_reauth"]
    assert "never" in lines[2] and lines[2].endswith("sign in again")  # no expiry: no token
    assert "2027-04-05" not in lines[2]
    assert "alice" not in result.out and "refresh-" not in result.out
    run.env(SYNC_SHOW_USER_IDS="true")
    assert run("users").out.splitlines()[1].startswith("alice ")


def test_users_with_no_users(run):
    result = run("users")
    assert result.code == 0
    assert "no users yet" in result.out


def test_help_explains_every_command(run, capsys):
    with pytest.raises(SystemExit) as done:
        run("--help")
    assert done.value.code == 0
    text = capsys.readouterr().out
    for command in ("run", "migrate", "users", "login", "import", "doctor", "stats"):
        assert any(line.strip().startswith(command + " ") for line in text.splitlines()), command


# -- bad configuration: exit 2, one line, no traceback ------------------------------
def test_database_url_unset_in_github_actions(bare):
    bare.env(DATABASE_URL=None, GITHUB_ACTIONS="true")
    line = _one_line_error(bare("run"))
    assert "DATABASE_URL" in line and "secret" in line


@pytest.mark.parametrize(
    "url",
    ["mysql://user:pw@localhost/db", "localhost:5432", "postgresql://user:pw@[bad/db",
     "postgresql://user:pw@localhost:port/db"],
)  # fmt: skip
def test_malformed_database_url(bare, url):
    bare.env(DATABASE_URL=url)
    line = _one_line_error(bare("run"))
    assert "DATABASE_URL" in line
    assert "pw" not in line.replace("PASSWORD", "")


def test_database_url_libpq_cannot_parse(bare):
    bare.env(DATABASE_URL=UNUSED_DB + "?no_such_option=1")
    line = _one_line_error(bare("run"))
    assert "DATABASE_URL is not a valid connection string" in line


def test_unreachable_database(bare):
    bare.env(DATABASE_URL="postgresql://postgres:hunter2pw@127.0.0.1:1/postgres")
    line = _one_line_error(bare("run"))
    assert "cannot connect to the database" in line
    assert "hunter2pw" not in line


@pytest.mark.parametrize("missing", ["SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"])
def test_missing_spotify_credentials_with_a_user(run, conn, missing):
    add_user(conn)
    run.env(**{missing: None})
    line = _one_line_error(run("run"))
    assert missing in line


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5"])
def test_bad_max_tracks(bare, value):
    line = _one_line_error(bare("run", "--max-tracks", value))
    assert "--max-tracks" in line


@pytest.mark.parametrize(
    "args",
    [("run", "--concurrency", "0"), ("run", "--time-budget", "soon"), ("nonsense",), ()],
)  # fmt: skip
def test_bad_arguments(bare, args):
    _one_line_error(bare(*args))


@pytest.mark.parametrize("budget", ["nan", "inf", "infm", "NaNs", "0"])
def test_time_budget_must_be_a_finite_number(bare, budget):
    line = _one_line_error(bare("run", "--time-budget", budget))
    assert "--time-budget" in line and "positive number" in line


def test_unknown_user(run, conn):
    add_user(conn, "alice")
    line = _one_line_error(run("run", "--user", "alice", "--user", "mallory"))
    assert "mallory" in line and "python -m sync users" in line
    assert conn.execute("select count(*) from sync_runs").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("SYNC_SHOW_USER_IDS", "maybe"), ("SPOTIFY_API_URL", "api.spotify.test"),
     ("SPOTIFY_ACCOUNTS_URL", "ftp://accounts")],
)  # fmt: skip
def test_bad_settings(bare, name, value):
    bare.env(**{name: value})
    assert name in _one_line_error(bare("run"))


def test_user_option_limits_the_run(run, spotify, conn):
    add_user(conn, "alice", "refresh-alice-0001")
    add_user(conn, "bob", "refresh-bob-0001")
    spotify.add_user("alice", "refresh-alice-0001", window(NEWEST, 2))
    spotify.add_user("bob", "refresh-bob-0001", window(NEWEST, 2))
    result = run("run", "--json", "--user", "bob")
    assert [u["user_id"] for u in result.report["users"]] == ["user-2"]
    assert spotify.token_requests == ["refresh-bob-0001"]


def test_database_url_placeholder_is_named_by_every_command_and_in_actions(bare):
    bare.env(DATABASE_URL="postgresql://postgres.abc:[YOUR-PASSWORD]@h.example:5432/postgres")
    for argv in (("run",), ("users",), ("migrate",), ("stats",)):
        line = _one_line_error(bare(*argv))
        assert "still holds Supabase's [YOUR-PASSWORD] placeholder" in line, argv
    bare.actions()
    assert "[YOUR-PASSWORD] placeholder" in _one_line_error(bare("run"))


def test_version_is_pyproject_s(capsys):
    import tomllib
    from pathlib import Path

    from sync import __version__
    from sync.cli import main

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    assert __version__ == tomllib.loads(pyproject.read_text())["project"]["version"]
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"spotify-history-sync {__version__}\n"


@pytest.mark.parametrize("argv", [("-v", "users"), ("users", "-v"), ("users", "--verbose")])
def test_verbose_before_or_after_the_command(run, argv):
    from sync.cli import build_parser

    assert build_parser().parse_args(list(argv)).verbose is True
    assert build_parser().parse_args(["users"]).verbose is False
    assert run(*argv).code == 0


def test_verbose_after_a_nested_command():
    from sync.cli import build_parser

    args = build_parser().parse_args(["users", "remove", "user-1", "-v"])
    assert args.verbose is True and args.user == "user-1"


def test_a_command_imports_only_its_own_module_and_help_lists_every_one():
    """Each command adds its own flags, so parsing `migrate` need not import `report`'s
    packages: every command stays quick to start."""
    import subprocess
    import sys
    from pathlib import Path

    from sync.commands import COMMANDS

    code = ("import sys; from sync.cli import build_parser; build_parser({argv}); "
            "print(sorted(m for m in sys.modules if m.startswith('sync.commands.')))")  # fmt: skip
    root = Path(__file__).resolve().parent.parent

    def imported(argv: list[str] | None) -> str:
        done = subprocess.run([sys.executable, "-c", code.format(argv=argv)], cwd=root,
                              capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return done.stdout.strip()

    assert imported(["-v", "migrate", "--help"]) == "['sync.commands.migrate']"
    everything = sorted(f"sync.commands.{m}" for m in COMMANDS.values())
    assert imported(None) == imported(["--help"]) == str(everything)


def test_users_help_shows_the_action_as_optional(run, capsys):
    """`python -m sync users` alone lists the users: its help must not make ACTION look required."""
    with pytest.raises(SystemExit) as done:
        run("users", "--help")
    assert done.value.code == 0
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert "[ACTION]" in usage
    assert " ACTION" not in usage.replace("[ACTION]", "")
    assert "without ACTION: list the users" in text


# -- an empty first run, and what the finished line's time covers ---------------------
def test_an_empty_first_run_on_the_embedded_database_says_it_worked_and_what_next(
    run, db_url, tmp_path, monkeypatch
):
    from sync import db

    run.env(DATABASE_URL=None)  # the embedded database (here: the test database stands in)
    monkeypatch.setitem(db._embedded, (tmp_path / ".data").resolve(), db_url)
    result = run("run")
    assert result.code == 0, result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith("the run worked: the embedded database in .data/ is ready")
    assert "tables" in last and "nobody to sync yet" in last
    assert "python -m sync demo" in last
    assert "python -m sync setup (or python -m sync login)" in last
    assert "DATABASE_URL" not in result.err


def test_an_empty_run_with_database_url_set_says_to_sign_in(run):
    result = run("run")
    assert result.code == 0, result.err
    assert result.err.strip().splitlines()[-1] == (
        "no users to sync yet: sign in with python -m sync login (or python -m sync setup) "
        "with DATABASE_URL set to this database"
    )


def test_the_finished_line_counts_from_the_commands_start(run, monkeypatch):
    """Starting and connecting to the database is part of the time the line reports."""
    from contextlib import contextmanager

    from sync import db

    real_open = db.open_database

    @contextmanager
    def slow_open(settings, **kwargs):
        run.time.advance(2.0)  # the embedded server's start, say
        with real_open(settings, **kwargs) as conn:
            yield conn

    monkeypatch.setattr(db, "open_database", slow_open)
    result = run("run", "--json")
    assert result.code == 0, result.err
    finished = [line for line in result.err.splitlines() if line.startswith("sync finished")]
    assert finished == [
        "sync finished: 0/0 users synced, 0 failed, 0 need re-auth, 0 skipped, 0 new plays in 2.0s"
    ]
    assert result.report["duration_s"] == 2.0
