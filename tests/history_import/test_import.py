"""`sync import` against a real Postgres: formats, rules, matching with synced plays,
idempotence, collisions, bulk loading, atomicity, and the command itself."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from sync.analytics import upkeep as analytics
from sync.commands import import_export as import_command
from sync.errors import UserError
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ExportFormatError, ParseOptions
from sync.history_import.progress import Progress
from sync.job.transform import parse_items
from sync.store import aggregates
from tests.conftest import add_user
from tests.support.analytics import rebuilt_snapshot, snapshot
from tests.support.export_fakes import (
    account,
    audiobook,
    dumps,
    episode,
    extended,
    podcast,
    uri,
    write,
    write_zip,
)
from tests.support.spotify_fakes import item
from tests.support.store import store_plays

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)
EXT = "Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def do_import(db_url, key, *paths, workers=1, bulk=False, **options):
    sources, _ = find_sources([str(p) for p in paths])
    with psycopg.connect(db_url) as c:
        return import_export(c, key, sources, ParseOptions(**options), workers=workers, bulk=bulk)


def stored(conn, key=1) -> list[tuple]:
    """(played_at, track uri, ms_played, source) of every play, oldest first."""
    return conn.execute(
        """select h.played_at, t.uri, h.ms_played, h.source from listening_history h
             join tracks t on t.id = h.track_id where h.user_id = %s order by 1""",
        (key,),
    ).fetchall()


def sync_plays(conn, key, items) -> list[datetime]:
    """Store Web API items the way `sync run` does."""
    plays, _ = parse_items(items)
    with conn.transaction():
        return store_plays(conn, key, plays)


def counts(result) -> dict:
    return {
        "entries": result.total("entries"),
        "new": result.total("new"),
        "matched": result.total("matched"),
        "already": result.total("already"),
        "replaced": result.total("replaced"),
        "skipped": dict(result.skipped()),
    }


# -- formats and files ---------------------------------------------------------------
def test_the_zip_as_delivered_is_imported_with_exact_times_and_listening_time(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    entries = [extended(T0 + minutes(4 * i), i, 150_000 + i) for i in range(5)]
    archive = write_zip(tmp_path / "my_spotify_data.zip", {
        EXT: entries,
        "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf": "%PDF",
        "__MACOSX/Spotify Extended Streaming History/._Streaming_History_Audio_2024_0.json": "x",
    })  # fmt: skip
    result = do_import(db_url, key, archive)
    assert counts(result) == {"entries": 5, "new": 5, "matched": 0, "already": 0,
                              "replaced": 0, "skipped": {}}  # fmt: skip
    assert [f.name for f in result.files] == [f"my_spotify_data.zip:{EXT}"]
    assert stored(conn, key) == [(T0 + minutes(4 * i), uri(i), 150_000 + i, 1) for i in range(5)]


def test_new_tracks_get_albums_and_artists_reusing_an_artist_of_the_same_name(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    real = conn.execute(
        "insert into artists (uri, spotify_id, name) values "
        "('spotify:artist:real1', 'real1', 'Artist 1') returning id"
    ).fetchone()[0]
    entries = [extended(T0, 1), extended(T0 + minutes(5), 2), extended(T0 + minutes(9), 12)]
    write(tmp_path / "Streaming_History_Audio_2024_0.json", entries)
    do_import(db_url, key, tmp_path)
    rows = conn.execute(
        """select t.uri, t.spotify_id, t.name, al.uri, al.name, a.uri, a.name
             from tracks t join albums al on al.id = t.album_id
             join track_artists ta on ta.track_id = t.id and ta.position = 0
             join artists a on a.id = ta.artist_id order by t.uri"""
    ).fetchall()
    assert rows == [
        (uri(1), f"trk{1:019d}", "Song 1", "spotify:export-album:Artist 1:Album 1", "Album 1",
         "spotify:artist:real1", "Artist 1"),
        (uri(2), f"trk{2:019d}", "Song 2", "spotify:export-album:Artist 2:Album 2", "Album 2",
         "spotify:export-artist:Artist 2", "Artist 2"),
        (uri(12), f"trk{12:019d}", "Song 12", "spotify:export-album:Artist 2:Album 5", "Album 5",
         "spotify:export-artist:Artist 2", "Artist 2"),
    ]  # fmt: skip
    assert conn.execute("select count(*) from artists where name = 'Artist 1'").fetchone()[0] == 1
    assert real


def test_folders_are_searched_recursively_and_single_files_and_old_names_work(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    write(tmp_path / "export" / "MyData" / "endsong_0.json", [extended(T0, 1)])
    write(tmp_path / "export" / "MyData" / "Userdata.json", [{"username": "x"}])
    write(tmp_path / "export" / "MyData" / "StreamingHistory0.json",
          [account(T0 + minutes(10), 2)])  # fmt: skip
    single = write(tmp_path / "StreamingHistory_music_0.json", [account(T0 + minutes(20), 3)])
    renamed = write(tmp_path / "history.json", [extended(T0 + minutes(30), 4)])
    sources, ignored = find_sources([str(tmp_path / "export"), str(single), str(renamed)])
    assert [(s.name, s.kind) for s in sources] == [
        ("MyData/endsong_0.json", "extended"),
        ("history.json", "extended"),
        ("MyData/StreamingHistory0.json", "account"),
        ("StreamingHistory_music_0.json", "account"),
    ]
    assert ignored == 1
    result = do_import(db_url, key, tmp_path / "export", single, renamed)
    assert result.total("new") == 4
    assert [(r[1], r[3]) for r in stored(conn, key)] == [
        (uri(1), 1),
        ("spotify:export:Artist 2:Song 2", 2),
        ("spotify:export:Artist 3:Song 3", 2),
        (uri(4), 1),
    ]


def test_paths_that_are_not_an_export_are_refused_with_a_fix(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        find_sources([str(tmp_path / "missing.zip")])
    (tmp_path / "notes.json").write_text("[]")
    with pytest.raises(UserError, match="not a Spotify streaming history file"):
        find_sources([str(tmp_path / "notes.json")])
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="not a readable .zip"):
        find_sources([str(tmp_path / "broken.zip")])


# -- rules ----------------------------------------------------------------------------
def test_incognito_short_video_and_duplicates_are_skipped_and_counted_episodes_kept_apart(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [
        extended(T0, 1),
        extended(T0 + minutes(3), 2, incognito=True),
        extended(T0 + minutes(6), 3, 29_000),
        episode(T0 + minutes(9)),
        audiobook(T0 + minutes(19)),
        extended(T0 + minutes(29), 4),
        extended(T0 + minutes(29), 4, 100_000),  # the same play again, shorter
    ])  # fmt: skip
    write(tmp_path / "Streaming_History_Audio_2024_1.json", [extended(T0, 1)])  # across files
    write(tmp_path / "Streaming_History_Video_2024.json", [extended(T0 + minutes(40), 5)])
    write(tmp_path / "StreamingHistory_podcast_0.json", [podcast(T0 + minutes(50))])
    result = do_import(db_url, key, tmp_path)
    assert counts(result) == {
        "entries": 10, "new": 2, "matched": 0, "already": 1, "replaced": 0,
        "skipped": {"incognito": 1, "short": 1, "video": 1, "duplicate": 1},
    }  # fmt: skip
    assert stored(conn, key) == [(T0, uri(1), 180_000, 1), (T0 + minutes(29), uri(4), 180_000, 1)]
    # the episodes and the chapter are not music: stored apart (tests/history_import/test_spoken.py)
    assert (result.total("episodes"), result.total("chapters")) == (2, 1)


def test_min_seconds_changes_the_threshold(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 1, 5_000), extended(T0 + minutes(2), 2, 50_000)])  # fmt: skip
    result = do_import(db_url, key, tmp_path, min_ms=60_000)
    assert result.total("new") == 0 and result.skipped() == {"short": 2}
    assert do_import(db_url, key, tmp_path, min_ms=0).total("new") == 2


# -- malformed files -----------------------------------------------------------------
def test_a_malformed_file_is_named_with_its_entry_and_nothing_is_written(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [extended(T0, 1)])
    bad = [extended(T0 + minutes(5), 2), extended(T0 + minutes(9), 3)]
    bad[1]["ms_played"] = "a while"
    write(tmp_path / "Streaming_History_Audio_2024_1.json", bad)
    for bulk in (False, True):
        with pytest.raises(ExportFormatError) as info:
            do_import(db_url, key, tmp_path, bulk=bulk)
        assert str(info.value) == (
            "Streaming_History_Audio_2024_1.json: entry 2: 'ms_played' is 'a while', not a "
            "number of milliseconds"
        )
        assert stored(conn, key) == []
        assert conn.execute("select count(*) from tracks").fetchone()[0] == 0
    constraints = conn.execute(
        "select count(*) from pg_constraint where conrelid = 'listening_history'::regclass "
        "and contype = 'f'"
    ).fetchone()[0]
    assert constraints == 2


def test_broken_json_is_reported_from_a_worker_process(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [extended(T0, 1)])
    text = dumps([extended(T0 + minutes(i), i) for i in range(4)])
    (tmp_path / "Streaming_History_Audio_2024_1.json").write_text(text[:-30])
    with pytest.raises(ExportFormatError) as info:
        do_import(db_url, key, tmp_path, workers=2)
    assert info.value.name == "Streaming_History_Audio_2024_1.json" and info.value.entry == 4
    assert stored(conn, key) == []


# -- matching with synced plays -------------------------------------------------------
def test_synced_plays_within_the_tolerance_gain_ms_played_and_others_stay_apart(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    t = [T0 + minutes(10 * i) for i in range(6)]
    ms = timedelta(milliseconds=1)
    sync_plays(conn, key, [
        item(t[0] + timedelta(seconds=1.2), 1),  # 0.2 s after the export's second
        item(t[1] + timedelta(seconds=91), 2),  # 90 s after it ends: the edge, matched
        item(t[2] + timedelta(seconds=91) + ms, 3),  # 1 ms further: a different play
        item(t[3] - timedelta(seconds=90), 4),  # 90 s before: matched
        item(t[4] - timedelta(seconds=90) - ms, 5),  # 1 ms further: a different play
        item(t[5] + timedelta(seconds=2), 6, millis=False),  # another song: never matched
    ])  # fmt: skip
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(t[i], i + 1, 100_000 + i) for i in range(5)] + [extended(t[5], 7)])  # fmt: skip
    result = do_import(db_url, key, tmp_path)
    assert (result.total("matched"), result.total("new")) == (3, 3)
    assert result.offsets is not None and result.offsets.count == 3
    assert result.offsets.max_ms == 91_000
    rows = stored(conn, key)
    assert len(rows) == 9
    by_track = {}
    for played_at, track, ms_played, source in rows:
        by_track.setdefault(track, []).append((played_at, ms_played, source))
    assert by_track[uri(1)] == [(t[0] + timedelta(seconds=1.2), 100_000, 0)]
    assert by_track[uri(2)] == [(t[1] + timedelta(seconds=91), 100_001, 0)]
    assert by_track[uri(3)] == [(t[2], 100_002, 1), (t[2] + timedelta(seconds=91) + ms, None, 0)]
    assert by_track[uri(4)] == [(t[3] - timedelta(seconds=90), 100_003, 0)]
    assert by_track[uri(5)] == [(t[4] - timedelta(seconds=90) - ms, None, 0), (t[4], 100_004, 1)]


def test_pairs_are_one_to_one_so_two_plays_of_a_short_song_stay_two(db_url, conn, tmp_path):
    key = add_user(conn)
    sync_plays(
        conn, key, [item(T0 + timedelta(seconds=40.5), 1), item(T0 + timedelta(seconds=0.3), 1)]
    )
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 1, 40_000), extended(T0 + timedelta(seconds=40), 1, 39_000)])  # fmt: skip
    result = do_import(db_url, key, tmp_path, min_ms=0)
    assert (result.total("matched"), result.total("new")) == (2, 0)
    assert [r[2] for r in stored(conn, key)] == [40_000, 39_000]


def test_account_data_matches_by_name_artist_and_minute(db_url, conn, tmp_path):
    key = add_user(conn)
    synced = T0 + timedelta(minutes=3, seconds=35.123)
    sync_plays(conn, key, [item(synced, 3), item(T0 - timedelta(days=3), 8)])
    write(tmp_path / "StreamingHistory_music_0.json", [
        account(T0 + minutes(3), 3, 201_000),  # the synced play: same names, same minute
        account(T0 + minutes(9), 8, 120_000),  # an existing track, no play nearby: reuse it
        account(T0 + minutes(20), 9, 100_000, artist="Someone New"),  # unknown: placeholder
    ])  # fmt: skip
    result = do_import(db_url, key, tmp_path)
    assert counts(result)["matched"] == 1 and counts(result)["new"] == 2
    assert stored(conn, key) == [
        (T0 - timedelta(days=3), uri(8), None, 0),
        (synced, uri(3), 201_000, 0),
        (T0 + minutes(9), uri(8), 120_000, 2),
        (T0 + minutes(20), "spotify:export:Someone New:Song 9", 100_000, 2),
    ]


def test_importing_the_same_export_twice_adds_nothing(db_url, conn, tmp_path):
    key = add_user(conn)
    entries = [extended(T0 + minutes(3 * i), i % 3) for i in range(12)] + [extended(T0, 5)]
    write(tmp_path / "Streaming_History_Audio_2024_0.json", entries)
    write(tmp_path / "StreamingHistory_music_0.json",
          [account(T0 + minutes(60 + i), 1) for i in range(4)])  # fmt: skip
    first = do_import(db_url, key, tmp_path)
    before = stored(conn, key)
    tables = [conn.execute(f"select count(*) from {t}").fetchone()[0]
              for t in ("tracks", "albums", "artists", "track_artists")]  # fmt: skip
    second = do_import(db_url, key, tmp_path)
    assert first.total("new") == 17 and second.total("new") == 0
    assert second.total("already") == 17
    assert stored(conn, key) == before
    assert tables == [conn.execute(f"select count(*) from {t}").fetchone()[0]
                      for t in ("tracks", "albums", "artists", "track_artists")]  # fmt: skip


def test_extended_history_replaces_account_data_plays_it_covers(db_url, conn, tmp_path):
    key = add_user(conn)
    acc = write(tmp_path / "a" / "StreamingHistory_music_0.json",
                [account(T0 + minutes(5), 2, 150_000), account(T0 + minutes(30), 3)])  # fmt: skip
    ext = write(tmp_path / "e" / "Streaming_History_Audio_2024_0.json",
                [extended(T0 + timedelta(minutes=5, seconds=41), 2, 150_400)])  # fmt: skip
    do_import(db_url, key, acc)
    result = do_import(db_url, key, ext)
    assert (result.total("replaced"), result.total("new")) == (1, 1)
    assert stored(conn, key) == [
        (T0 + timedelta(minutes=5, seconds=41), uri(2), 150_400, 1),
        (T0 + minutes(30), "spotify:export:Artist 3:Song 3", 180_000, 2),
    ]
    again = do_import(db_url, key, acc)  # and account data after extended adds nothing
    assert (again.total("new"), again.total("already")) == (0, 2)


def test_plays_sharing_an_end_time_are_kept_a_millisecond_apart(db_url, conn, tmp_path):
    key = add_user(conn)
    sync_plays(conn, key, [item(T0 + minutes(30), 9, millis=False)])  # exactly on a second
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [
        extended(T0, 1), extended(T0, 2),  # two songs, one end time
        extended(T0 + minutes(30), 3),  # the synced play's time, another song
    ])  # fmt: skip
    assert do_import(db_url, key, tmp_path).total("new") == 3
    ms = timedelta(milliseconds=1)
    assert [(r[0], r[1]) for r in stored(conn, key)] == [
        (T0, uri(1)), (T0 + ms, uri(2)), (T0 + minutes(30), uri(9)),
        (T0 + minutes(30) + ms, uri(3)),
    ]  # fmt: skip
    assert do_import(db_url, key, tmp_path).total("new") == 0


# -- bulk loading, workers, analytics --------------------------------------------------
def _mixed_export(tmp_path):
    for n in range(3):
        write(tmp_path / f"Streaming_History_Audio_2024_{n}.json",
              [extended(T0 + minutes(100 * n + 3 * i), i % 9 + n) for i in range(30)])  # fmt: skip
    write(tmp_path / "StreamingHistory_music_0.json",
          [account(T0 + minutes(3 * i), i % 9) for i in range(40)])  # fmt: skip
    return tmp_path


def test_bulk_mode_and_worker_processes_store_the_same_thing(db_url, conn, tmp_path,
                                                             pg_cluster):  # fmt: skip
    export = _mixed_export(tmp_path)
    key = add_user(conn)
    plain = do_import(db_url, key, export)
    expected = stored(conn, key)
    other = pg_cluster.create()
    try:
        with psycopg.connect(other, autocommit=True) as c2:
            key2 = add_user(c2)
            bulk = do_import(other, key2, export, workers=2, bulk=True)
            assert stored(c2, key2) == expected
            assert counts(bulk) == counts(plain)
            assert [f.name for f in bulk.files] == [f.name for f in plain.files]
            fks = c2.execute(
                """select conrelid::regclass::text, count(*) from pg_constraint
                    where contype = 'f' and conrelid = any(array['listening_history', 'tracks',
                          'track_artists']::regclass[]) group by 1 order by 1"""
            ).fetchall()
            assert fks == [("listening_history", 2), ("track_artists", 2), ("tracks", 1)]
    finally:
        pg_cluster.drop(other)


def test_analytics_are_refreshed_for_every_changed_play(db_url, conn, tmp_path, monkeypatch):
    key = add_user(conn)
    synced = T0 + timedelta(seconds=0.5)
    sync_plays(conn, key, [item(synced, 1)])
    write(tmp_path / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 1), extended(T0 + minutes(4), 2)])  # fmt: skip
    calls, rebuilds = [], []
    monkeypatch.setattr(
        aggregates, "refresh_days", lambda c, k, times: calls.append((k, list(times)))
    )
    monkeypatch.setattr(aggregates, "rebuild", lambda c, k: rebuilds.append(k))
    do_import(db_url, key, tmp_path)
    assert [(k, sorted(times)) for k, times in calls] == [(key, [synced, T0 + minutes(4)])]
    assert rebuilds == []
    do_import(db_url, key, tmp_path, bulk=True)  # nothing changes: nothing to rebuild
    assert rebuilds == []
    write(tmp_path / "Streaming_History_Audio_2024_1.json", [extended(T0 + minutes(9), 3)])
    do_import(db_url, key, tmp_path, bulk=True)
    assert rebuilds == [key]


def test_analytics_tables_agree_with_the_history_after_an_import(db_url, conn, tmp_path):
    key = add_user(conn)
    export = _mixed_export(tmp_path)
    do_import(db_url, key, export)
    do_import(db_url, key, export, bulk=True)
    with conn.transaction():
        assert not analytics.is_stale(conn, key)


def test_a_bulk_import_of_exact_plays_gives_what_the_day_by_day_path_gives(db_url, conn, tmp_path):
    # Every play of an extended export has ms_played: the rebuild then skips the window
    # that estimates listening time. The day-by-day path must come to the same rows.
    key = add_user(conn)
    conn.execute("update user_tokens set time_zone = 'Asia/Kathmandu' where id = %s", (key,))
    for n in range(3):
        write(tmp_path / f"Streaming_History_Audio_2024_{n}.json",
              [extended(T0 + minutes(500 * n + 37 * i), i % 9 + n) for i in range(30)])  # fmt: skip
    do_import(db_url, key, tmp_path, bulk=True)
    rebuilt = snapshot(conn, [key])
    assert len(rebuilt["listening_days"]) >= 2 and all(rebuilt.values())
    with conn.transaction():
        for table in ("listening_days", "listening_hour_weekday", "listening_day_entities",
                      "listening_entity_totals"):  # fmt: skip
            conn.execute(sql.SQL("delete from {} where user_id = %s").format(sql.Identifier(table)),
                         (key,))  # fmt: skip
        conn.execute(
            """select analytics_refresh_plays(%(k)s, array(select played_at
                      from listening_history where user_id = %(k)s))""",
            {"k": key},
        )
    assert snapshot(conn, [key]) == rebuilt


# -- import then sync, and the command ------------------------------------------------
def test_import_then_sync_adds_nothing_but_new_plays(run, spotify, conn, tmp_path):
    add_user(conn, "alice", "refresh-alice-0001")
    ends = [T0 + minutes(4 * i) for i in range(6)]
    write(tmp_path / "x" / "Streaming_History_Audio_2024_0.json",
          [extended(t, i) for i, t in enumerate(ends[:3])])  # fmt: skip
    write(tmp_path / "x" / "StreamingHistory_music_0.json",
          [account(t, i) for i, t in enumerate(ends[3:5], start=3)])  # fmt: skip
    done = run("import", str(tmp_path / "x"), "--user", "alice", "--no-progress")
    assert done.code == 0, done.err
    window = [item(t + timedelta(seconds=0.7), i) for i, t in enumerate(ends)]
    spotify.add_user("alice", "refresh-alice-0001", list(reversed(window)))
    report = run("run", "--json").report
    assert report["tracks_added"] == 1  # only the play the export does not hold
    assert conn.execute("select count(*) from listening_history").fetchone()[0] == 6
    assert run("run", "--json").report["tracks_added"] == 0


def test_import_command_prints_counts_and_no_track_names(run, conn, tmp_path):
    key = add_user(conn, "alice", "refresh-alice-0001")
    write(tmp_path / "x" / "Streaming_History_Audio_2024_0.json",
          [extended(T0, 1, name="Secret Song"), extended(T0 + minutes(3), 2, 1_000)])  # fmt: skip
    done = run("import", str(tmp_path / "x"), "--user", f"user-{key}", "--no-progress")
    assert done.code == 0, done.err
    assert "Secret Song" not in done.out + done.err
    assert done.out.splitlines()[0] == (
        "Streaming_History_Audio_2024_0.json: 2 read, 1 new, 0 matched synced plays, "
        "0 already stored, 1 skipped (too short 1)"
    )
    assert done.out.splitlines()[1].startswith(
        f"imported extended streaming history for user-{key}: 1 file, 2 entries read, 1 new plays"
    )
    assert done.err == ""  # not a terminal: no progress bar


def test_import_command_errors_are_one_line_with_exit_2(run, conn, tmp_path):
    add_user(conn, "alice", "refresh-alice-0001")
    write(tmp_path / "x" / "Streaming_History_Audio_2024_0.json", [extended(T0, 1)])
    missing = run("import", str(tmp_path / "x"), "--user", "bob")
    assert missing.code == 2
    assert missing.err.count("\n") == 1 and "python -m sync login" in missing.err
    (tmp_path / "x" / "Streaming_History_Audio_2024_0.json").write_text('[{"ts": 5}]')
    bad = run("import", str(tmp_path / "x"), "--user", "alice")
    assert bad.code == 2 and bad.err.count("\n") == 1
    assert "Streaming_History_Audio_2024_0.json: entry 1: 'ts' is 5" in bad.err
    assert "nothing was imported" in bad.err
    empty = run("import", str(tmp_path / "nothing"), "--user", "alice")
    assert empty.code == 2 and "no such file or folder" in empty.err
    (tmp_path / "nothing").mkdir()
    none = run("import", str(tmp_path / "nothing"), "--user", "alice")
    assert none.code == 2 and "no Spotify streaming history" in none.err
    assert run("import", str(tmp_path / "x"), "--user", "alice", "--min-seconds", "-1").code == 2


def test_removed_users_cannot_import(conn):
    add_user(conn, "alice", "refresh-alice-0001")
    conn.execute("update user_tokens set status = 'removed', refresh_token = null")
    with pytest.raises(UserError, match="was removed"):
        import_command.import_target(conn, "alice")


def test_progress_bar_draws_on_a_terminal_only():
    stream = io.StringIO()
    clock = iter([0.0, 1.0, 2.0, 3.0]).__next__
    bar = Progress(1000, 4, stream=stream, enabled=True, clock=clock)
    bar.update(2, 500, 12_345)
    bar.finish()
    assert stream.getvalue() == (
        f"\rimporting [{'#' * 15:<30}]  50%  2/4 files  12,345 plays    1.0s\n"
    )
    quiet = io.StringIO()
    off = Progress(1000, 4, stream=quiet, enabled=False)
    off.update(4, 1000, 1, force=True)
    off.finish()
    assert quiet.getvalue() == ""


def test_placeholders_take_on_the_real_identity_when_the_sync_sees_it(db_url, conn, tmp_path):
    key = add_user(conn)
    write(tmp_path / "Streaming_History_Audio_2024_0.json", [extended(T0, 1)])
    write(tmp_path / "StreamingHistory_music_0.json", [account(T0 + minutes(30), 2)])
    do_import(db_url, key, tmp_path)
    ids_before = conn.execute(
        "select played_at, track_id from listening_history order by 1"
    ).fetchall()
    assert conn.execute("select count(*) from artists where uri like 'spotify:export-artist:%'"
                        ).fetchone()[0] == 2  # fmt: skip
    # Later the Web API reports other plays of those songs (track 6 shares Artist 1).
    day = T0 + timedelta(days=1)
    sync_plays(conn, key, [item(day, 1), item(day + minutes(5), 2), item(day + minutes(9), 6)])
    assert conn.execute("select played_at, track_id from listening_history "
                        "where played_at < %s order by 1", (T0 + timedelta(days=1),)
                        ).fetchall() == ids_before  # fmt: skip
    assert (
        conn.execute("select count(*) from artists where uri like 'spotify:export-%'").fetchone()[0]
        == 0
    )
    assert conn.execute("select count(*) from artists where name = 'Artist 1'").fetchone()[0] == 1
    rows = conn.execute(
        """select t.uri, t.duration_ms, al.uri, a.uri from tracks t
             join albums al on al.id = t.album_id
             join track_artists ta on ta.track_id = t.id and ta.position = 0
             join artists a on a.id = ta.artist_id where t.uri = any(%s) order by 1""",
        ([uri(1), uri(2)],),
    ).fetchall()
    assert rows == [
        (uri(1), 200_000, f"spotify:album:alb{1:019d}", f"spotify:artist:art{1:019d}"),
        (uri(2), 200_000, f"spotify:album:alb{2:019d}", f"spotify:artist:art{2:019d}"),
    ]
    assert conn.execute("select count(*) from tracks").fetchone()[0] == 3


def test_a_sync_that_completes_stored_tracks_keeps_their_analytics_current(
    run, spotify, conn, tmp_path, monkeypatch
):
    key = add_user(conn, "alice", "refresh-alice-0001")

    def on(day: int, n: int) -> datetime:  # each kind of change on a day of its own
        return T0 + timedelta(days=day, minutes=4 * n)

    # Account data names songs only (its tracks get neither album nor length); the
    # extended history gives each song its first artist only, and no length. Song 6
    # separates the days: its plays change nothing (they know their listening time).
    write(tmp_path / "x" / "StreamingHistory_music_0.json",
          [account(on(3, n), n) for n in (1, 2)])  # fmt: skip
    write(tmp_path / "x" / "Streaming_History_Audio_2024_0.json",
          [extended(on(5, n), n) for n in (3, 4)]
          + [extended(on(day, 6), 6) for day in (2, 4, 6)])  # fmt: skip
    assert run("import", str(tmp_path / "x"), "--user", "alice", "--no-progress").code == 0
    # A play the Web API reported without the song's length: estimated as 0 ms.
    spotify.add_user("alice", "refresh-alice-0001", [item(on(1, 5), 5, duration_ms=None)])
    assert run("run").code == 0
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])
    unknown = "select count(*) filter (where duration_ms is null), "
    unknown += "count(*) filter (where album_id is null) from tracks"
    assert conn.execute(unknown).fetchone() == (6, 2)  # no album: account data's 1 and 2

    # Later the Web API reports the songs again, with length and album; songs 3 and 4
    # with a second artist.
    spotify.plays["alice"] = [item(on(8, -n), n, artists=2 if n in (3, 4) else 1)
                              for n in (1, 2, 3, 4, 5, 6)]  # fmt: skip
    assert run("run").code == 0
    assert conn.execute(unknown).fetchone() == (0, 0)
    assert conn.execute("select count(*) from track_artists where position = 1").fetchone()[0] == 2
    # The changed tracks' older plays were refreshed in the sync's transaction: the
    # aggregates are exactly what a rebuild from the history gives.
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])
    by_album = conn.execute(
        "select count(*) from listening_entity_totals where user_id = %s and kind = 3", (key,)
    ).fetchone()[0]
    assert by_album == 6  # each song's album, its older plays included

    # An ordinary sync of the same songs changes nothing else.
    spotify.plays["alice"] = [item(on(9, -n), n, artists=2 if n == 3 else 1) for n in (3, 2, 1)]
    assert run("run").code == 0
    assert snapshot(conn, [key]) == rebuilt_snapshot(conn, [key])


def _api_window_cost(conn, key: int, times: list, tracks: list[int]) -> tuple[float, float]:
    """(estimated cost of insert_plays' insert statement, of the function's own query).

    The function's body is planned when it runs; it is planned here the same way, as a
    statement with the function's arguments as parameters.
    """
    source = conn.execute(
        "select prosrc from pg_proc where proname = 'history_api_plays_to_insert'"
    ).fetchone()[0]
    body = re.search(r"return query(.*);\s*end\s*$", source, re.S).group(1)  # plpgsql's query
    for n, name in enumerate(("p_user", "p_times", "p_tracks", "p_tolerance_ms"), 1):
        body = re.sub(rf"\b{name}\b", f"${n}", body)
    args = (key, times, tracks, 90_000)
    with conn.transaction() as tx:
        conn.execute(f"prepare body (integer, timestamptz[], integer[], integer) as {body}")
        conn.execute(
            "prepare ins (integer, timestamptz[], integer[], integer) as "
            "insert into listening_history (user_id, played_at, track_id, source) "
            "select $1, t, k, 0 from history_api_plays_to_insert($1, $2, $3, $4) as u(t, k) "
            "on conflict (user_id, played_at) do nothing returning played_at"
        )
        costs = []
        for name in ("ins", "body"):
            query = sql.SQL("explain (format json) execute {}({})").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Literal, args))
            )
            plan = conn.execute(query).fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            costs.append(plan[0]["Plan"]["Total Cost"])
        conn.execute("deallocate all")
        raise psycopg.Rollback(tx)
    return costs[0], costs[1]


def test_matching_synced_plays_with_imported_ones_is_planned_cheap_and_without_jit(conn):
    """A large estimate made Postgres 15 compile JIT code on every sync (~0.6 s a user)."""
    key = add_user(conn)
    conn.execute(
        """insert into tracks (uri, name) select 'spotify:track:t' || g, 'Song ' || g
             from generate_series(1, 2000) g"""
    )
    lo = conn.execute("select min(id) from tracks").fetchone()[0]
    conn.execute(  # 30,000 imported plays, 3.5 minutes apart
        """insert into listening_history (user_id, played_at, track_id, ms_played, source)
           select %s, %s + g * interval '210 seconds', %s + g %% 2000, 120000, 1
             from generate_series(0, 29999) g""",
        (key, T0, lo),
    )
    conn.execute("analyze")
    threshold = float(conn.execute("select current_setting('jit_above_cost')").fetchone()[0])
    newest = T0 + 30_000 * timedelta(seconds=210)
    inside = T0 + 15_000 * timedelta(seconds=210)
    for start in (newest, inside):  # the hourly case; plays the import holds already
        times = [start + i * minutes(4) for i in range(50)]
        insert, body = _api_window_cost(conn, key, times, [lo + i for i in range(50)])
        assert insert < threshold / 10 and body < threshold / 10, (start, insert, body)
    config = conn.execute(
        "select proconfig from pg_proc where proname = 'history_api_plays_to_insert'"
    ).fetchone()[0]
    assert "jit=off" in (config or [])  # and never JIT, whatever the estimate


def test_python_m_sync_import_runs_parser_processes(db_url, conn, tmp_path):
    """As a subprocess: worker processes must start cleanly under `python -m sync`."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    add_user(conn, "alice", "refresh-alice-0001")
    for n in range(3):
        write(tmp_path / f"Streaming_History_Audio_2024_{n}.json",
              [extended(T0 + minutes(100 * n + 4 * i), i) for i in range(5)])  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "SYNC_"))}
    env["DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, "-m", "sync", "import", str(tmp_path), "--user", "alice", "--jobs", "2"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3 files, 15 entries read, 15 new plays" in done.stdout
    assert conn.execute("select count(*) from listening_history").fetchone()[0] == 15


def test_progress_bar_pads_over_a_longer_previous_line():
    stream = io.StringIO()
    bar = Progress(100, 1, stream=stream, enabled=True, clock=lambda: 0.0)
    bar.update(1, 100, 5, force=True, note="checking keys, updating analytics")
    first = stream.getvalue()
    bar.update(1, 100, 5, force=True)
    second = stream.getvalue()[len(first) :]
    assert first.endswith("  checking keys, updating analytics")
    assert len(second) == len(first) and second.rstrip().endswith("0.0s")


def test_import_reports_episode_like_plays_and_skips_excluded_shows(run, conn, tmp_path):
    add_user(conn, "alice", "refresh-alice-0001")
    rows = [account(T0, 1), account(T0 + minutes(60), 2, ms=40 * 60_000, artist="My Podcast"),
            account(T0 + minutes(120), 3, ms=30 * 60_000, artist="Other Pod")]  # fmt: skip
    write(tmp_path / "x" / "StreamingHistory0.json", rows)
    done = run("import", str(tmp_path / "x"), "--user", "alice", "--no-progress",
               "--exclude-show", "MY PODCAST")  # fmt: skip
    assert done.code == 0, done.err
    assert "excluded show 1" in done.out
    assert (
        "1 entry of old account-data files (StreamingHistory<n>.json) lasted over 20 minutes"
        in done.out
    )
    assert "My Podcast" not in done.out  # counts only, never names
    assert conn.execute("select count(*) from listening_history").fetchone()[0] == 2
