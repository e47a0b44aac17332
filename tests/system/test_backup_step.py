"""The backup workflow's own export step, run the way GitHub's runner runs it.

The runner writes a `run:` script to a file and runs `bash --noprofile --norc -eo pipefail FILE`
with the step's env. This test does the same with the *Export every user* step of
.github/workflows/backup.yml against the test database: the zips it leaves in backup/ (what the
upload step takes), the step's output for the upload's condition, the summary, the failure
that must fail the job, and the README's restore of one zip into a new database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import add_user
from tests.export.test_export import sync_plays
from tests.support.spotify_fakes import item
from tests.test_workflows import BACKUP, ROOT, _load, step

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)


def run_step(tmp_path: Path, db_url: str, **extra: str) -> subprocess.CompletedProcess:
    """The step's script in a fresh workspace, with the step's env (vars unset are empty)."""
    script = tmp_path / "step.sh"
    script.write_text(step(_load(BACKUP), "Export every user")["run"])
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SYNC_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(ROOT),  # the runner's checkout; here the workspace stays apart from it
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"),
        GITHUB_OUTPUT=str(tmp_path / "output"),
        DATABASE_URL=db_url,
        SYNC_SHOW_USER_IDS="",
        **extra,
    )
    for name in ("summary.md", "output"):
        (tmp_path / name).write_text("")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def audio_entries(archive: Path) -> list[dict]:
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        names = z.namelist()
        assert names and all(
            n.startswith("Spotify Extended Streaming History/Streaming_History_Audio_")
            and n.endswith(".json")
            for n in names
        ), names
        return [e for n in names for e in json.loads(z.read(n))]


def test_the_step_exports_every_user_into_backup_and_says_where_in_the_summary(
    db_url, conn, tmp_path
):
    alice = add_user(conn, "alice", "refresh-alice-0001")
    bob = add_user(conn, "bob", "refresh-bob-0001")
    carol = add_user(conn, "carol", "refresh-carol-0001")  # signed in, nothing played yet
    sync_plays(conn, alice, [item(T0 + timedelta(minutes=4 * i), i) for i in range(3)])
    sync_plays(conn, bob, [item(T0 + timedelta(days=400, minutes=4 * i), 10 + i) for i in range(2)])
    done = run_step(tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr

    folder = tmp_path / "work" / "backup"
    today = datetime.now(UTC).date()
    zips = sorted(folder.iterdir())
    assert [p.name for p in zips] == [
        f"spotify-history-user-{alice}-{today}.zip",
        f"spotify-history-user-{bob}-{today}.zip",
    ]
    assert [len(audio_entries(p)) for p in zips] == [3, 2]
    assert {e["ts"][:4] for e in audio_entries(zips[1])} == {"2025"}

    assert (tmp_path / "output").read_text() == "files=2\n"  # the upload's condition
    where, blank, counts = (tmp_path / "summary.md").read_text().splitlines()
    assert where.startswith("Backup: artifact **spotify-history-backup** of this run, under ")
    until = {(today + timedelta(days=d)).isoformat() for d in (90, 91)}  # 91: past midnight
    assert any(f"kept 90 days, until {day}." in where for day in until), where
    assert 'To restore: README "Backups".' in where and blank == ""
    assert counts.startswith("`exported 2 users (5 plays) to backup in ")
    assert counts.endswith(f"; 1 skipped, no plays: user-{carol}`")
    summary = "\n".join((where, counts))
    for text in ("alice", "bob", "carol", "Song"):  # aliases only, no track names
        assert text not in done.stdout + done.stderr + summary, text


def test_with_no_plays_yet_nothing_is_uploaded_and_the_run_stays_green(db_url, conn, tmp_path):
    add_user(conn)
    done = run_step(tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "output").read_text() == "files=0\n"
    assert list((tmp_path / "work" / "backup").iterdir()) == []
    where, _, counts = (tmp_path / "summary.md").read_text().splitlines()
    assert where == "Backup: no user has plays yet, nothing to back up."
    assert counts.startswith("`exported 0 users (0 plays) to backup in ")


def test_a_failed_export_fails_the_step_and_says_so(db_url, tmp_path):
    gone = db_url.rsplit("/", 1)[0] + "/no_such_database"
    done = run_step(tmp_path, gone)
    assert done.returncode == 1
    assert "::error title=Backup failed::" in done.stdout
    assert (tmp_path / "output").read_text() == ""  # no files=: later steps do not run anyway
    assert (tmp_path / "summary.md").read_text().startswith("**Backup failed**: ")
    # the export's own one line (after the mask of the URL that GitHub mode emits first)
    (line,) = [x for x in done.stderr.splitlines() if not x.startswith("::add-mask::")]
    assert line.startswith("error: cannot connect to the database"), done.stderr


@pytest.fixture
def new_db_url(pg_cluster):
    url = pg_cluster.create()
    yield url
    pg_cluster.drop(url)


def test_a_backup_zip_restores_into_a_new_database_as_the_readme_says(
    db_url, new_db_url, conn, tmp_path
):
    alice = add_user(conn, "alice", "refresh-alice-0001")
    sync_plays(conn, alice, [item(T0 + timedelta(minutes=4 * i), i) for i in range(3)])
    assert run_step(tmp_path, db_url).returncode == 0
    (backup,) = (tmp_path / "work" / "backup").iterdir()
    with psycopg.connect(new_db_url, autocommit=True) as new:
        add_user(new, "alice", "refresh-alice-0001")  # `python -m sync login` in the new one
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SYNC_"))}
    env.update(DATABASE_URL=new_db_url, PYTHONPATH=str(ROOT))
    restore = [sys.executable, "-m", "sync", "import", str(backup), "--user", "alice"]
    done = subprocess.run(
        [*restore, "--min-seconds", "0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    query = "select played_at from listening_history order by played_at"
    before = [at.replace(microsecond=0) for (at,) in conn.execute(query).fetchall()]
    with psycopg.connect(new_db_url) as new:
        assert [at for (at,) in new.execute(query).fetchall()] == before
