"""`sync export --all --out-dir DIR`: every user's history, one file each (what the weekly
backup workflow runs), against a real Postgres."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sync.commands.export import default_name
from tests.conftest import add_user
from tests.export.test_export import sync_plays
from tests.support.spotify_fakes import item

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)


def plays_in(archive: Path) -> int:
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        names = z.namelist()
        assert names and all(n.rsplit("/", 1)[-1].startswith("Streaming_History_Audio_")
                             for n in names)  # fmt: skip
        return sum(len(json.loads(z.read(n))) for n in names)


def users_with_history(conn) -> dict[str, int]:
    """alice (3 plays), bob (2), carol (none), dave (removed, his 1 play kept), the demo."""
    keys = {
        name: add_user(conn, name, f"refresh-{name}-0001") for name in ("alice", "bob", "carol")
    }
    keys["dave"] = add_user(conn, "dave", None, status="removed")
    keys["demo"] = add_user(conn, "demo", None, status="demo")
    sync_plays(conn, keys["alice"], [item(T0 + timedelta(minutes=4 * i), i) for i in range(3)])
    sync_plays(conn, keys["bob"], [item(T0 + timedelta(minutes=4 * i), 10 + i) for i in range(2)])
    sync_plays(conn, keys["dave"], [item(T0, 20)])
    sync_plays(conn, keys["demo"], [item(T0, 30)])
    return keys


def test_all_writes_one_file_per_user_skips_and_counts_users_without_plays(run, conn, tmp_path):
    keys = users_with_history(conn)
    done = run("export", "--all", "--out-dir", "backup/weekly")
    assert done.code == 0, done.err
    files = sorted((tmp_path / "backup" / "weekly").iterdir())  # the folder is made
    today = datetime.now(UTC).date().isoformat()
    expected = {
        keys[n]: f"spotify-history-user-{keys[n]}-{today}.zip" for n in ("alice", "bob", "dave")
    }
    assert [p.name for p in files] == sorted(expected.values())
    counts = {name: plays_in(tmp_path / "backup" / "weekly" / expected[keys[name]])
              for name in ("alice", "bob", "dave")}  # fmt: skip
    assert counts == {"alice": 3, "bob": 2, "dave": 1}
    lines = done.out.splitlines()
    assert f"skipped user-{keys['carol']}: no plays in the history" in lines
    assert lines[-1].startswith("exported 3 users (6 plays) to backup/weekly in ")
    assert lines[-1].endswith(f"; 1 skipped, no plays: user-{keys['carol']}")
    assert sum(line.startswith("exported 3 plays of user-") for line in lines) == 1
    # aliases only: no Spotify id, no track name; the made-up demo user is left out
    for text in ("alice", "bob", "carol", "dave", "demo", "Song"):
        assert text not in done.out + done.err, text
    assert f"user-{keys['demo']}" not in done.out


def test_all_names_users_by_id_only_when_sync_show_user_ids_allows(run, conn, tmp_path):
    users_with_history(conn)
    run.monkeypatch.setenv("SYNC_SHOW_USER_IDS", "true")
    done = run("export", "--all", "--out-dir", "out", "--format", "csv")
    assert done.code == 0, done.err
    today = datetime.now(UTC).date().isoformat()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"spotify-history-{n}-{today}.csv" for n in ("alice", "bob", "dave")
    ]
    assert "skipped carol: no plays" in done.out and "of alice to out/" in done.out


def test_all_with_a_period_skips_users_without_plays_in_it_and_still_succeeds(run, conn, tmp_path):
    keys = users_with_history(conn)
    done = run("export", "--all", "--from", "2030-01-01")
    assert done.code == 0, done.err
    assert done.out.splitlines()[-1].startswith("exported 0 users (0 plays) to . in ")
    skipped = ", ".join(f"user-{keys[n]}" for n in ("alice", "bob", "carol", "dave"))
    assert done.out.splitlines()[-1].endswith(f"; 4 skipped, no plays: {skipped}")
    assert not list(tmp_path.glob("*.zip"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--all", "--user", "alice"], "one file per user into --out-dir: drop --user"),
        (["--all", "--out", "x.zip"], "drop --user and --out"),
        ([], "name the user to export (--user ID), or export everyone (--all)"),
        (["--user", "alice", "--out", "x.zip", "--out-dir", "d"], "--out names the file itself"),
        (["--all", "--out-dir", "a-file"], "cannot make the folder a-file"),
        (["--all", "--out-dir", "a-file/sub"], "cannot make the folder a-file/sub"),
    ],
)  # fmt: skip
def test_all_flag_errors_are_one_line_with_exit_2(run, conn, tmp_path, argv, message):
    users_with_history(conn)
    (tmp_path / "a-file").write_text("")
    done = run("export", *argv)
    assert done.code == 2 and done.err.count("\n") == 1 and message in done.err, done.err
    assert "Traceback" not in done.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_one_user_with_out_dir_gets_the_default_name_there(run, conn, tmp_path):
    keys = users_with_history(conn)
    done = run("export", "--user", "bob", "--out-dir", "here")
    assert done.code == 0, done.err
    (written,) = (tmp_path / "here").iterdir()
    assert (
        written.name.startswith(f"spotify-history-user-{keys['bob']}-") and plays_in(written) == 2
    )


def test_default_name_is_a_safe_file_name_whatever_the_id_holds():
    day = date(2026, 12, 3)
    assert default_name("user-7", "spotify", day) == "spotify-history-user-7-2026-12-03.zip"
    assert default_name("a/b\\c d", "csv", day) == "spotify-history-a_b_c_d-2026-12-03.csv"
    assert default_name("..", "spotify", day) == "spotify-history-user-2026-12-03.zip"
