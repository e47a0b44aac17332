"""`sync export` against a real Postgres: Spotify's format and CSV, the round trip through
`sync import` into an empty database, same-second plays, periods, streaming, bad input."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from sync.commands.export import period
from sync.errors import UserError
from sync.export import export_history
from sync.export import query as export_query
from sync.export.history import NoPlays
from sync.export.output import atomic_file
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ParseOptions
from sync.job.transform import parse_items
from tests.conftest import add_user
from tests.support.export_fakes import (
    account,
    audiobook,
    episode,
    extended,
    podcast,
    write,
    write_zip,
)
from tests.support.spotify_fakes import item
from tests.support.store import plays_of, store_plays
from tests.support.store import spoken_of as store_spoken_of

T0 = datetime(2024, 5, 6, 18, 0, 0, tzinfo=UTC)
EXT = "Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json"
EVERYTHING = {"min_ms": 0}


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture
def other_db_url(pg_cluster):
    """A second, empty (migrated) database: where the round trip imports the export."""
    url = pg_cluster.create()
    yield url
    pg_cluster.drop(url)


def do_import(url: str, key: int, *paths, **options):
    sources, _ = find_sources([str(p) for p in paths])
    with psycopg.connect(url) as c:
        return import_export(c, key, sources, ParseOptions(**options), workers=1)


def do_export(url: str, key: int, out: Path, **kw):
    with psycopg.connect(url) as c:
        return export_history(c, key, out, **kw)


def sync_plays(conn, key, items) -> None:
    """Store Web API items the way `sync run` does."""
    plays, _ = parse_items(items)
    with conn.transaction():
        store_plays(conn, key, plays)


def spoken_of(url: str, key: int) -> list[tuple]:
    """(end second, kind, uri, show, name, ms_played) of the podcast and audiobook plays."""
    return [(at.replace(microsecond=0), *rest) for at, *rest in store_spoken_of(url, key)]


def entries(archive: Path) -> dict[str, list[dict]]:
    with zipfile.ZipFile(archive) as z:
        return {name: json.loads(z.read(name)) for name in z.namelist()}


def identity(row: tuple) -> tuple:
    """A play as the round trip keeps it: end second, and the track by URI or by names."""
    at, uri, name, artist = row[:4]
    song = uri if uri.startswith(("spotify:track:", "spotify:episode:")) else (name, artist)
    return (at.replace(microsecond=0), song)


def real_shaped_history(conn, db_url, tmp_path, key) -> None:
    """Plays from all three sources, as Spotify and the Web API deliver them: extended
    history (every field, an episode, a track without URI, two songs ending in one second),
    account data, and synced plays (some with no imported counterpart)."""
    ext = [extended(T0 + minutes(4 * i), i, 150_000 + i) for i in range(6)]
    ext.append(extended(T0 + minutes(30), 7))  # two different songs, one second:
    ext.append(extended(T0 + minutes(30), 8))  # stored 1 ms apart
    ext.append(extended(T0 + minutes(40), 9, track_uri=None, name='Local, "Song"', album="X"))
    ext.append(episode(T0 + minutes(60), 1))
    ext.append(extended(datetime(2023, 12, 31, 23, 58, 30, tzinfo=UTC), 10))  # another year
    (tmp_path / "in").mkdir()
    write_zip(tmp_path / "in" / "my_spotify_data.zip", {EXT: ext})
    later = [account(T0 + minutes(24 * 60 + 3 * i), 20 + i, 100_000 + i) for i in range(4)]
    write(tmp_path / "in" / "StreamingHistory_music_0.json", later)
    do_import(db_url, key, tmp_path / "in", **EVERYTHING)
    sync_plays(conn, key, [item(T0 + timedelta(days=2, minutes=4 * i), 30 + i) for i in range(3)])


# -- the round trip -------------------------------------------------------------------------
def test_round_trip_into_an_empty_database_keeps_every_play(db_url, other_db_url, conn, tmp_path):
    key = add_user(conn)
    real_shaped_history(conn, db_url, tmp_path, key)
    before, spoken = plays_of(db_url, key), spoken_of(db_url, key)
    result = do_export(db_url, key, tmp_path / "out.zip")
    assert (len(before), len(spoken)) == (17, 1)  # music, and the podcast episode apart
    assert result.plays == 18 and result.episodes == 1 and result.moved == 0

    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    report = do_import(other_db_url, other_key, tmp_path / "out.zip", **EVERYTHING)
    assert (report.total("new"), report.total("episodes")) == (len(before), 1)
    after = plays_of(other_db_url, other_key)
    assert [identity(r) for r in after] == [identity(r) for r in before]
    assert spoken_of(other_db_url, other_key) == spoken  # end second, item, ms_played
    imported = [(identity(b), b[4], a[4]) for b, a in zip(before, after, strict=True) if b[5] != 0]
    assert all(b == a for _, b, a in imported) and len(imported) == 14  # exact ms_played
    # Web API plays: the analytics' estimate, the length capped by the gap to the play before
    api = [(b, a) for b, a in zip(before, after, strict=True) if b[5] == 0]
    previous = {r[0]: p[0] for p, r in zip(before, before[1:], strict=False)}
    for b, a in api:
        gap = round((b[0] - previous[b[0]]).total_seconds() * 1000)
        assert a[4] == min(b[6], gap)
    assert len(api) == 3 and result.estimated == 3


def test_same_song_twice_in_one_second_is_moved_a_second_on_and_counted(
    db_url, other_db_url, conn, tmp_path
):
    key = add_user(conn)
    # account data: the same song twice in one minute (seen in real exports) is stored at
    # 18:43:00.000 and 18:43:00.001; a third, other song, at .002
    write(tmp_path / "in" / "StreamingHistory_music_0.json", [
        account(T0, 1, 40_000), account(T0, 1, 50_000), account(T0, 2, 60_000),
        account(T0 + timedelta(seconds=60), 1, 70_000),
    ])  # fmt: skip
    do_import(db_url, key, tmp_path / "in", **EVERYTHING)
    result = do_export(db_url, key, tmp_path / "out.zip")
    assert result.moved == 1
    ((name, rows),) = entries(tmp_path / "out.zip").items()
    assert [(e["ts"], e["master_metadata_track_name"], e["ms_played"]) for e in rows] == [
        ("2024-05-06T18:00:00Z", "Song 1", 40_000),
        ("2024-05-06T18:00:01Z", "Song 1", 50_000),  # moved: would be taken for the first
        ("2024-05-06T18:00:00Z", "Song 2", 60_000),
        ("2024-05-06T18:01:00Z", "Song 1", 70_000),
    ]
    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    assert do_import(other_db_url, other_key, tmp_path / "out.zip").total("new") == 4


def test_a_moved_play_never_lands_on_a_later_play_of_the_same_song(db_url, conn, tmp_path):
    key = add_user(conn)
    sync_plays(conn, key, [item(T0, 1, millis=False)])
    ms = timedelta(milliseconds=1)
    with conn.transaction():  # as collisions leave them: .000 .001 .002, and the next second
        for at in (T0 + ms, T0 + 2 * ms, T0 + timedelta(seconds=1)):
            conn.execute(
                "insert into listening_history (played_at, user_id, track_id, ms_played, source)"
                " select %s, user_id, track_id, 40000, 2 from listening_history limit 1",
                (at,),
            )
    result = do_export(db_url, key, tmp_path / "out.zip")
    (rows,) = entries(tmp_path / "out.zip").values()
    assert [e["ts"][17:19] for e in rows] == ["00", "01", "02", "03"]
    assert result.moved == 3  # .001 -> :01, .002 -> :02, and :01's own play -> :03


# -- Spotify's format ---------------------------------------------------------------------------
def test_every_field_of_spotify_s_format_in_its_order_one_file_a_year(db_url, conn, tmp_path):
    key = add_user(conn)
    real_shaped_history(conn, db_url, tmp_path, key)
    result = do_export(db_url, key, tmp_path / "out.zip")
    files = entries(tmp_path / "out.zip")
    folder = "Spotify Extended Streaming History/"
    assert list(files) == [f"{folder}Streaming_History_Audio_2023.json",
                           f"{folder}Streaming_History_Audio_2024.json"]  # fmt: skip
    assert result.files == {name: len(rows) for name, rows in files.items()}
    rows = [e for f in files.values() for e in f]
    fields = list(extended(T0))
    assert all(list(e) == fields for e in rows)
    first = rows[1]  # extended(T0, 0, 150_000) imported: what the history knows, nulls else
    assert first == dict.fromkeys(fields) | {
        "ts": "2024-05-06T18:00:00Z", "ms_played": 150_000,
        "master_metadata_track_name": "Song 0", "master_metadata_album_artist_name": "Artist 0",
        "master_metadata_album_album_name": "Album 0",
        "spotify_track_uri": "spotify:track:trk0000000000000000000", "incognito_mode": False,
    }  # fmt: skip
    ep = next(e for e in rows if e["episode_name"])
    assert (ep["episode_show_name"], ep["spotify_episode_uri"], ep["spotify_track_uri"]) == (
        "A Show", "spotify:episode:ep00000000000000000001", None)  # fmt: skip
    assert result.episodes == 1
    local = next(e for e in rows if e["master_metadata_track_name"] == 'Local, "Song"')
    assert local["spotify_track_uri"] is None  # names only, as Spotify writes local files
    assert [e["ts"] for e in rows] == sorted(e["ts"] for e in rows)


def test_podcasts_and_audiobooks_come_back_in_end_time_order_among_the_songs(
    db_url, other_db_url, conn, tmp_path
):
    key = add_user(conn)
    ext = [extended(T0 + minutes(10 * i), i) for i in range(4)]
    ext += [audiobook(T0 + minutes(15)), episode(T0 + minutes(45), 2)]
    (tmp_path / "in").mkdir()
    write_zip(tmp_path / "in" / "my_spotify_data.zip", {EXT: ext})
    write(tmp_path / "in" / "StreamingHistory_podcast_0.json", [podcast(T0 + minutes(25))])
    do_import(db_url, key, tmp_path / "in", **EVERYTHING)
    spoken = spoken_of(db_url, key)
    assert [row[1] for row in spoken] == [2, 1, 1]  # the chapter, then two episodes

    result = do_export(db_url, key, tmp_path / "out.zip")
    assert (result.plays, result.episodes, result.chapters) == (7, 2, 1)
    (written,) = entries(tmp_path / "out.zip").values()
    assert [e["ts"] for e in written] == sorted(e["ts"] for e in written)
    chapter = next(e for e in written if e["audiobook_title"])
    fields = ("audiobook_chapter_uri", "spotify_track_uri", "episode_name")
    assert [chapter[f] for f in fields] == ["spotify:chapter:chap000000000000000001", None, None]
    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    do_import(other_db_url, other_key, tmp_path / "out.zip", **EVERYTHING)
    assert spoken_of(other_db_url, other_key) == spoken
    assert [identity(r) for r in plays_of(other_db_url, other_key)] == [
        identity(r) for r in plays_of(db_url, key)
    ]


def test_a_year_too_large_for_one_file_comes_in_parts(
    db_url, other_db_url, conn, tmp_path, monkeypatch
):
    from sync.export import spotify

    key = add_user(conn)
    real_shaped_history(conn, db_url, tmp_path, key)  # 2023: 1 play, 2024: 17 (1 episode)
    monkeypatch.setattr(spotify, "PART_ENTRIES", 5)
    result = do_export(db_url, key, tmp_path / "out.zip")
    folder = "Spotify Extended Streaming History/Streaming_History_Audio_"
    assert result.files == {f"{folder}2023.json": 1, f"{folder}2024_0.json": 5,
                            f"{folder}2024_1.json": 5, f"{folder}2024_2.json": 5,
                            f"{folder}2024_3.json": 2}  # fmt: skip
    assert list(entries(tmp_path / "out.zip")) == list(result.files)
    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    report = do_import(other_db_url, other_key, tmp_path / "out.zip", **EVERYTHING)
    assert (report.total("new"), report.total("episodes")) == (17, 1)


def test_the_period_is_local_days_and_the_first_play_s_estimate_looks_before_it(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    conn.execute("update user_tokens set time_zone = 'Europe/Berlin' where id = %s", (key,))
    # Berlin is UTC+2 in May: the local day 2024-05-07 is 05-06 22:00 to 05-07 22:00 UTC
    day = datetime(2024, 5, 6, 22, 0, tzinfo=UTC)
    ends = [day - minutes(1), day + minutes(1), day + minutes(600), day + minutes(1440)]
    sync_plays(conn, key, [item(t, i, duration_ms=200_000) for i, t in enumerate(ends)])
    since, until = period(date(2024, 5, 7), date(2024, 5, 7), "Europe/Berlin")
    result = do_export(db_url, key, tmp_path / "day.zip", since=since, until=until)
    (rows,) = entries(tmp_path / "day.zip").values()
    assert [e["ts"] for e in rows] == ["2024-05-06T22:01:00Z", "2024-05-07T08:00:00Z"]
    assert [e["ms_played"] for e in rows] == [120_000, 200_000]  # 2 min since the play before
    assert result.short == 0 and result.estimated == 2


# -- CSV ----------------------------------------------------------------------------------------
def test_csv_has_the_plays_view_s_columns_and_rfc_4180_quoting(db_url, conn, tmp_path):
    key = add_user(conn)
    real_shaped_history(conn, db_url, tmp_path, key)
    result = do_export(db_url, key, tmp_path / "out.csv", fmt="csv")
    raw = (tmp_path / "out.csv").read_bytes()
    text = raw.decode("utf-8")
    assert text.startswith("spotify_user_id,played_at,track,artists,album,ms_played,")
    assert text.endswith("\r\n") and '"Local, ""Song"""' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    view = conn.execute(
        """select * from plays where spotify_user_id = 'alice' order by played_at"""
    ).fetchall()
    header = [c.name for c in conn.execute("select * from plays limit 0").description]
    assert rows[0] == header
    assert len(rows) - 1 == len(view) == result.plays == 17  # music: the episode is apart
    for got, want in zip(rows[1:], view, strict=True):
        expect = ["" if v is None else str(v) for v in want]
        expect[1] = want[1].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert got == expect


def test_rows_come_from_a_server_side_cursor_in_batches_in_one_read_only_snapshot(
    db_url, conn, tmp_path, monkeypatch
):
    key = add_user(conn)
    sync_plays(conn, key, [item(T0 + minutes(4 * i), i) for i in range(25)])
    seen, snapshot = [], set()
    real = export_query.stream

    def watching(c, query, params, itersize=export_query.ITERSIZE, name="sync_export"):
        for batch in real(c, query, params, itersize, name):
            cursors = c.execute("select name from pg_cursors").fetchall()
            seen.append((len(batch), cursors))
            mode = "select current_setting('transaction_isolation'), "
            mode += "current_setting('transaction_read_only')"
            snapshot.add(c.execute(mode).fetchone())
            yield batch

    monkeypatch.setattr(export_query, "stream", watching)
    do_export(db_url, key, tmp_path / "out.zip", itersize=10)
    tracks, plays = [("sync_export_tracks",)], [("sync_export",)]
    assert seen == [(25, tracks), (10, plays), (10, plays), (5, plays)]  # the tracks first
    assert snapshot == {("repeatable read", "on")}  # one snapshot, and it cannot write


def test_prefetching_hands_on_errors_and_ends_its_thread_when_the_writer_stops():
    import threading

    def failing():
        yield [1]
        raise psycopg.OperationalError("the server went away")

    with pytest.raises(psycopg.OperationalError), export_query.prefetched(failing()) as rows:
        assert next(rows) == [1]
        next(rows)
    closed = []

    def endless():
        try:
            while True:
                yield [0]
        finally:
            closed.append(threading.current_thread().name)

    with pytest.raises(RuntimeError), export_query.prefetched(endless(), depth=1) as rows:
        next(rows)
        raise RuntimeError("disk full")
    assert closed == ["export-fetch"]  # closed (its cursor with it) in the thread using it
    assert "export-fetch" not in [t.name for t in threading.enumerate()]


# -- bad input: one line, exit 2, no file ---------------------------------------------------------
def test_nothing_to_export_or_an_unwritable_path_leaves_no_file(db_url, conn, tmp_path):
    key = add_user(conn)
    with pytest.raises(NoPlays):
        do_export(db_url, key, tmp_path / "empty.zip")
    sync_plays(conn, key, [item(T0, 1)])
    with pytest.raises(UserError, match="cannot write"):
        do_export(db_url, key, tmp_path / "missing" / "out.zip")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        do_export(db_url, key, tmp_path / "file" / "out.zip")
    with pytest.raises(UserError, match="is a folder"):
        do_export(db_url, key, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failure_half_way_removes_the_temporary_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "out.zip") as fh:
        fh.write(b"partial")
        assert len(list(tmp_path.iterdir())) == 1  # the temporary file, beside the target
        raise RuntimeError("lost the connection")
    assert list(tmp_path.iterdir()) == []


def test_export_command_prints_counts_and_no_track_names(run, conn, tmp_path):
    key = add_user(conn)
    sync_plays(conn, key, [item(T0 + minutes(4 * i), i) for i in range(3)])
    done = run("export", "--user", "alice")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].startswith(
        f"exported 3 plays of user-{key} to spotify-history-user-{key}-"
    ) and lines[0].endswith(": 1 file, Streaming_History_Audio_2024.json")
    assert "ms_played of 3 Web API plays is an estimate" in lines[1]
    assert lines[2].startswith("0 plays moved a second later")
    assert "Song" not in done.out + done.err
    (written,) = tmp_path.glob("spotify-history-*")
    assert written.suffix == ".zip" and written.stat().st_mode & 0o777 == 0o600  # yours only
    done = run("export", "--user", f"user-{key}", "--format", "csv", "--out", "h.csv")
    assert done.code == 0 and done.out.startswith(f"exported 3 plays of user-{key} to h.csv in ")
    assert (tmp_path / "h.csv").read_text().count("\n") == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--user", "bob"], "no user 'bob'"),
        (["--user", "alice", "--from", "2030-01-01"], "no plays of user-1 from 2030-01-01 (UTC)"),
        (["--user", "alice", "--out", "nowhere/x.zip"], "cannot write nowhere/x.zip"),
        (["--user", "alice", "--from", "May 5"], "--from 'May 5' is not a date"),
        (["--user", "alice", "--from", "2024-02-01", "--to", "2024-01-01"], "is after --to"),
        (["--user", "alice", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)  # fmt: skip
def test_export_command_errors_are_one_line_with_exit_2(run, conn, tmp_path, argv, message):
    add_user(conn)
    sync_plays(conn, 1, [item(T0, 1)])
    done = run("export", *argv)
    assert done.code == 2 and done.err.count("\n") == 1 and message in done.err, done.err
    assert "Traceback" not in done.err and not list(tmp_path.glob("*.zip"))
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".part"]
