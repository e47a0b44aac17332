"""The backup workflow's own step scripts, run and cancelled the way GitHub's runner does.

The runner writes a `run:` script to a file and runs `bash --noprofile --norc -eo pipefail FILE`
with the step's env; a cancel is SIGINT to that bash, SIGTERM 7.5 s later, the tree killed 2.5 s
after (tests/support/runner.py). These tests do the same with the *Export every user* and *Link
the backup* steps of .github/workflows/backup.yml against the test database: the zips left in
backup/ (what the upload step takes), the step's output for the upload's condition, the
summary, the failure that must fail the job, a cancel, and the README's restore of one zip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.conftest import add_user
from tests.export.test_export import sync_plays
from tests.support.runner import STEP_SHELL, cancel_like_the_runner, kill_group
from tests.support.spotify_fakes import item
from tests.test_workflows import BACKUP, ROOT, _load, step

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)


def _step(
    tmp_path: Path, db_url: str, name: str = "Export every user", **extra: str
) -> tuple[list[str], Path, dict]:
    """A step's script in the workspace (made by the first step), with the step's env (vars
    unset are empty): (the command, the workspace, the env)."""
    script = tmp_path / f"{name.replace(' ', '-')}.sh"
    script.write_text(step(_load(BACKUP), name)["run"])
    work = tmp_path / "work"
    first = not work.exists()
    work.mkdir(exist_ok=True)
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
    for file in ("summary.md", "output"):
        if first:  # the job's summary gathers what every step appends
            (tmp_path / file).write_text("")
    return [*STEP_SHELL, str(script)], work, env


def run_step(
    tmp_path: Path, db_url: str, name: str = "Export every user", **extra: str
) -> subprocess.CompletedProcess:
    command, work, env = _step(tmp_path, db_url, name, **extra)
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)


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
    url = "https://github.com/o/r/actions/runs/1/artifacts/2"  # what the upload step outputs
    linked = run_step(tmp_path, db_url, "Link the backup", ARTIFACT_URL=url)
    assert linked.returncode == 0, linked.stdout + linked.stderr
    counts, blank, where, blank_too, link = (tmp_path / "summary.md").read_text().splitlines()
    assert link == f"Download it: [spotify-history-backup]({url})" and blank_too == ""
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
    assert where == "Backup: no user has plays yet, nothing to back up."  # and no link step
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


@pytest.mark.parametrize("lock", ["held", "released at the SIGINT"])
def test_a_cancelled_backup_claims_no_backup_in_the_summary(lock, db_url, conn, tmp_path):
    """Cancelled while the export waits (on a table lock the test holds). Held past the
    SIGTERM: bash dies, the export with the tree, the summary says nothing and backup/ holds
    no half-written zip. Released at the SIGINT: the export finishes and the step succeeds,
    writing only the counts (the artifact is named by the step after the upload, which a
    cancelled run never reaches: tests/test_workflows.py)."""
    alice = add_user(conn, "alice", "refresh-alice-0001")
    sync_plays(conn, alice, [item(T0 + timedelta(minutes=4 * i), i) for i in range(3)])
    command, work, env = _step(tmp_path, db_url)
    with psycopg.connect(db_url) as blocker:
        blocker.execute("lock table listening_history in access exclusive mode")
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            waiting = (
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                " and datname = current_database()"
            )
            deadline = time.monotonic() + 60
            while conn.execute(waiting).fetchone()[0] == 0:  # until the export waits on it
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "the export never reached the table"
            release = blocker.rollback if lock != "held" else lambda: None
            seconds, ended = cancel_like_the_runner(proc, release)
        finally:
            blocker.rollback()
            if proc.poll() is None:
                kill_group(proc)
    log = proc.stdout.read().decode()
    print(f"\n{lock}: {seconds:.2f} s from SIGINT to exit ({ended}), exit {proc.returncode}")
    summary = (tmp_path / "summary.md").read_text()
    zips = [p.name for p in (work / "backup").glob("spotify-history-*.zip")]
    if lock == "held":  # the export, bash's child, never hears the SIGINT: the kill ends it
        assert ended != "itself", log
        assert (summary, zips) == ("", []), log  # no claim, and no half-written zip to upload
    else:  # it finished: the step succeeds, but a cancelled run uploads nothing after it
        assert (ended, proc.returncode) == ("itself", 0), log
        assert summary.startswith("`exported 1 user (3 plays) to backup in "), summary
        assert zips == [f"spotify-history-user-{alice}-{datetime.now(UTC).date()}.zip"]
