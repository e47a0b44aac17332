"""`python -m sync demo`: a made-up year of listening, stored the way a real one is."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from sync import demo
from sync.commands.demo import cmd_demo
from sync.config import load_settings
from sync.doctor.check import FAIL, OK
from sync.doctor.users import check_users
from sync.errors import UserError
from sync.job.transform import parse_items
from sync.store import notices, outcome
from sync.store import runs as runs_store
from tests.commands.test_users_remove import remove, rows_of_user
from tests.conftest import add_user
from tests.support.spotify_fakes import window

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 19, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def history() -> demo.DemoHistory:
    return demo.make_history(NOW)


def _local(play: demo.DemoPlay) -> datetime:
    return play.ended_at.astimezone(ZoneInfo(demo.DEMO_ZONE))


# -- the history's shapes ---------------------------------------------------------------------
def test_the_same_seed_gives_the_same_history(history):
    again = demo.make_history(NOW)
    assert [(p.ended_at, p.track.uri, p.ms_played) for p in again.plays] == [
        (p.ended_at, p.track.uri, p.ms_played) for p in history.plays
    ]
    other = demo.make_history(NOW, seed=demo.SEED + 1)
    assert [p.track.uri for p in other.plays[:50]] != [p.track.uri for p in history.plays[:50]]


def test_it_spans_more_than_a_year_and_ends_now(history):
    plays = history.plays
    assert plays[-1].ended_at <= NOW
    assert NOW - plays[-1].ended_at < timedelta(hours=12)
    assert (plays[-1].ended_at - plays[0].ended_at).days >= 365
    assert 5_000 <= len(plays) <= 20_000


def test_a_holiday_of_a_week_or_more_has_no_plays(history):
    days = sorted({_local(p).date() for p in history.plays})
    longest = max((b - a).days - 1 for a, b in zip(days, days[1:], strict=False))
    assert longest >= 7
    first, last = history.gap
    assert not [p for p in history.plays if first <= _local(p).date() <= last]


def test_weekdays_and_weekends_have_their_own_daily_rhythm(history):
    weekday, weekend = Counter(), Counter()
    for p in history.plays:
        local = _local(p)
        (weekend if local.weekday() >= 5 else weekday)[local.hour] += 1

    def share(counter: Counter, hours: range) -> float:
        return sum(counter[h] for h in hours) / sum(counter.values())

    assert share(weekday, range(7, 10)) > 2 * share(weekend, range(7, 10))  # the commute
    assert share(weekend, range(0, 2)) > 2 * share(weekday, range(0, 2))  # late nights out
    assert share(weekday, range(3, 6)) < 0.02  # hardly anything before dawn
    assert share(weekday, range(18, 23)) > share(weekday, range(13, 18))  # the evening peak
    per_day = Counter(_local(p).date() for p in history.plays)
    saturdays = [n for d, n in per_day.items() if d.weekday() == 5]
    tuesdays = [n for d, n in per_day.items() if d.weekday() == 1]
    assert sum(saturdays) / len(saturdays) > 1.2 * sum(tuesdays) / len(tuesdays)


def test_favourites_take_most_plays_and_discoveries_come_over_the_year(history):
    by_artist = Counter(p.track.album.artist.name for p in history.plays)
    top5 = sum(n for _, n in by_artist.most_common(5))
    assert top5 > 0.4 * len(history.plays)
    first_played = {}
    for p in history.plays:
        first_played.setdefault(p.track.album.artist.name, _local(p).date())
    late = {a for a, day in first_played.items() if (day - history.first_day).days > 60}
    assert len(late) >= 20  # artists found long after the history starts
    assert late & {a for a, _ in by_artist.most_common(15)}  # and some became favourites


def test_skips_are_in_the_export_but_never_in_recently_played(history):
    exported = [e for entries in demo.export_files(history).values() for e in entries]
    assert sum(e["ms_played"] < demo.MIN_PLAY_MS for e in exported) > 0.05 * len(exported)
    windows = list(demo.sync_windows(history))
    assert windows and all(len(items) <= 50 for _, items in windows)
    short = {p.ended_at for p in history.plays if p.ms_played < demo.MIN_PLAY_MS}
    assert not [i for _, items in windows for i in items
                if datetime.fromisoformat(i["played_at"]) in short]  # fmt: skip


def test_late_plays_show_up_after_newer_plays_were_fetched(history):
    late = [p for p in history.plays if p.offline]
    assert len(late) == 2
    newest_seen = None
    for _, items in demo.sync_windows(history):
        ended = [datetime.fromisoformat(i["played_at"]) for i in items]
        for p in late:
            if p.ended_at in ended and newest_seen and p.ended_at < newest_seen:
                late.remove(p)  # first fetched when a newer play was fetched before
        newest_seen = max(ended + ([newest_seen] if newest_seen else []))
    assert late == []


def test_the_export_ends_before_the_sync_part_begins_and_they_overlap(history):
    files = demo.export_files(history)
    assert set(files) == {"Streaming_History_Audio_2025.json", "Streaming_History_Audio_2026.json"}
    last_ts = max(e["ts"] for e in files["Streaming_History_Audio_2026.json"])
    oldest_fetched = min(datetime.fromisoformat(i["played_at"])
                         for _, items in demo.sync_windows(history) for i in items)  # fmt: skip
    assert (
        oldest_fetched
        < datetime.fromisoformat(last_ts)
        < NOW - demo.EXPORT_LAG + timedelta(seconds=2)
    )
    plays, skipped = parse_items(next(demo.sync_windows(history))[1])
    assert plays and skipped == 0  # the Web API's shape, as the sync's transform reads it


# -- the command -------------------------------------------------------------------------------
def _demo(db_url: str, tmp_path: Path, capsys, *, yes: bool = True) -> tuple[int, str]:
    out = tmp_path / "report.html"
    code = cmd_demo(load_settings({"DATABASE_URL": db_url}), yes=yes, out=str(out), now=NOW)
    return code, capsys.readouterr().out


def _demo_key(conn: psycopg.Connection) -> int:
    return conn.execute("select id from user_tokens where user_id = 'demo'").fetchone()[0]


def test_demo_stores_the_history_prints_stats_and_writes_the_report(db_url, conn, tmp_path,
                                                                    capsys, history):  # fmt: skip
    code, out = _demo(db_url, tmp_path, capsys)
    assert code == 0
    key = _demo_key(conn)
    stored = conn.execute(
        "select count(*), count(*) filter (where source = 0) from listening_history "
        "where user_id = %s",
        (key,),
    ).fetchone()
    full = sum(p.ms_played >= demo.MIN_PLAY_MS for p in history.plays)
    assert stored[0] == full  # every full play once: the overlap of export and sync deduplicated
    assert 0 < stored[1] < 100  # the last hours came through the sync's write (source API)
    assert f"demo: {stored[0]:,} made-up plays" in out
    for p in (p for p in history.plays if p.offline):  # late plays are stored, by the sync
        assert conn.execute(
            "select source from listening_history where user_id = %s and played_at = %s",
            (key, p.ended_at),
        ).fetchone() == (0,)
    days = conn.execute(
        "select count(*) from listening_days where user_id = %s", (key,)
    ).fetchone()[0]
    assert days > 300  # analytics up to date, as after a real import and run
    assert "Top artists" in out and "Plays by hour and weekday" in out
    top = Counter(p.track.album.artist.name for p in history.plays[-9000:]).most_common(1)[0][0]
    assert top in out
    report = tmp_path / "report.html"
    assert f"report: {report}" in out
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and top in page
    assert "python -m sync users remove demo --yes" in out
    status = conn.execute("select status, refresh_token from user_tokens where id = %s", (key,))
    assert status.fetchone() == ("demo", None)


def test_a_second_demo_replaces_only_the_demo_users_data(db_url, conn, tmp_path, capsys):
    alice = add_user(conn, "alice", "refresh-alice-0001")
    parsed, _ = parse_items(window(NOW - timedelta(days=1), 7))
    outcome.save(conn, alice, 0, None, {"status": "ok"}, parsed)
    _demo(db_url, tmp_path, capsys)
    key = _demo_key(conn)
    first = rows_of_user(conn, key)
    alice_before = rows_of_user(conn, alice)
    code, _ = _demo(db_url, tmp_path, capsys)
    assert code == 0
    assert _demo_key(conn) == key  # the same alias, the same report name
    assert rows_of_user(conn, key) == first
    assert rows_of_user(conn, alice) == alice_before
    assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 2


def test_demo_refuses_a_real_user_called_demo(db_url, conn, tmp_path, capsys):
    key = add_user(conn, "demo", "refresh-demo-0001")
    with pytest.raises(UserError, match="never replaces a real account"):
        _demo(db_url, tmp_path, capsys)
    assert rows_of_user(conn, key)["listening_history"] == 0
    assert conn.execute("select status from user_tokens").fetchall() == [("active",)]


def test_demo_refuses_a_database_url_without_yes(run, conn):
    result = run("demo")
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("error: demo writes made-up")
    assert "--yes" in result.err and "unset DATABASE_URL" in result.err
    assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 0


def test_the_refusal_names_the_host_and_never_the_password(monkeypatch, capsys, tmp_path):
    from tests.support.sync_helpers import CliRunner

    url = "postgresql://owner:s3cret-pw-1234@db.example.test:6000/postgres"
    result = CliRunner(monkeypatch, capsys, tmp_path, url)("demo")  # refused before connecting
    assert result.code == 2
    assert "db.example.test:6000" in result.err
    assert "s3cret-pw-1234" not in result.err + result.out


def test_run_doctor_and_the_inbox_leave_the_demo_alone(db_url, conn, tmp_path, capsys, run):
    _demo(db_url, tmp_path, capsys)
    assert runs_store.candidates(conn) == []
    assert notices.user_facts(conn, 3) == []
    result = run("run")  # no Spotify call is mocked: any would fail the run
    assert result.code == 0, result.err
    assert "0/0 users synced" in result.err
    assert "demo" not in result.err.replace("sync demo", "")  # nothing to say about it


def test_doctor_names_the_demo_as_made_up_not_as_a_problem(db_url, conn, tmp_path, capsys):
    _demo(db_url, tmp_path, capsys)
    assert [c.status for c in check_users(conn, NOW)] == [FAIL]  # nobody real to sync yet
    add_user(conn, "alice", "refresh-alice-0001", authorized_at=NOW - timedelta(days=1))
    checks = {c.name: c for c in check_users(conn, NOW)}
    demo_check = checks[f"user-{_demo_key(conn)}"]
    assert demo_check.status == OK and "made-up history" in demo_check.detail


def test_users_remove_demo_removes_it(db_url, conn, tmp_path, capsys):
    _demo(db_url, tmp_path, capsys)
    key = _demo_key(conn)
    code, _ = remove(db_url, "demo", yes=True)
    assert code == 0
    assert conn.execute("select count(*) from user_tokens").fetchone()[0] == 0
    assert not any(rows_of_user(conn, key).values())


def test_the_readme_command_runs_on_the_embedded_database(tmp_path):
    """`python -m sync demo` as the README shows it: no DATABASE_URL, a fresh data dir."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("GITHUB_", "SPOTIFY_", "SYNC_", "DATABASE_URL"))}  # fmt: skip
    env = {**clean, "PYTHONPATH": str(ROOT), "SYNC_DATA_DIR": str(tmp_path / "data")}
    try:
        done = subprocess.run([sys.executable, "-m", "sync", "demo"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        path = done.stdout.split("report: ", 1)[1].split("\n", 1)[0]
        assert (tmp_path / path).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    finally:
        subprocess.run([sys.executable, "-m", "sync", "db", "stop"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=60)  # fmt: skip


def test_a_real_account_called_demo_signing_in_replaces_the_made_up_history(
    db_url, conn, tmp_path, capsys
):
    from sync.store import users as user_store

    _demo(db_url, tmp_path, capsys)
    key = _demo_key(conn)
    with conn.transaction():
        new_key, created, previous, _ = user_store.store_login(
            conn, "demo", "refresh-real-0001", "access-real-01", NOW + timedelta(hours=1),
            "user-read-recently-played", NOW,
        )  # fmt: skip
    assert created and previous is None
    assert conn.execute(
        "select status, refresh_token from user_tokens where user_id = 'demo'"
    ).fetchone() == ("active", "refresh-real-0001")
    assert not any(rows_of_user(conn, new_key).values())  # no made-up play is theirs
    assert not any(rows_of_user(conn, key).values())
