"""The export's round trip on real-shaped exports (tests/fixtures/exports/, README there):
import each into an empty database, export it with `python -m sync export` (both formats),
import the Spotify-format zip into a second empty database, and the plays are the same.

"The same" is issue 18's rule: end time to the second, track by URI or (without one) by
names, ms_played exact (every play here is imported); episodes and audiobook chapters
(spoken_plays) likewise, the item by URI or by kind, show (book) and name. Plays that share
a second with another play of the same song are written a second later (docs/export.md,
"Two plays of one song in one second"): the test counts them, and each such play comes back
at most two seconds after it was.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from sync.export import export_history
from sync.export.history import NoPlays
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ParseOptions
from tests.conftest import add_user
from tests.support.store import plays_of, spoken_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exports"

# Per fixture set: each file's (entries, new music plays, skipped by reason, episodes,
# chapters) under the import's defaults, as the fixture's entries were written to be (the
# README says which entry is which odd case); then the plays moved a second by the export.
EXPECTED = {
    "extended_2024": (
        {
            "Streaming_History_Audio_2023-2024_0.json": (
                26, 13, {"short": 3, "incognito": 1, "no_track": 1, "duplicate": 2}, 3, 3,
            ),
            "Streaming_History_Audio_2024_1.json": (10, 7, {"short": 1}, 1, 1),
            "Streaming_History_Video_2024.json": (3, 0, {"video": 1, "short": 1}, 1, 0),
        },
        0,  # two songs ending in one second are different songs: nothing moves
    ),
    "legacy_2022": (
        {"endsong_0.json": (12, 8, {"short": 1, "incognito": 1, "no_track": 1}, 1, 0)},
        0,
    ),
    "legacy_2023": ({"Streaming_History_Audio_2023.json": (2, 2, {}, 0, 0)}, 0),
    "account_2024": (
        {
            "StreamingHistory_music_0.json": (15, 12, {"short": 2, "duplicate": 1}, 0, 0),
            "StreamingHistory_music_1.json": (3, 2, {"short": 1}, 0, 0),
            "StreamingHistory_podcast_0.json": (5, 0, {"short": 1}, 4, 0),
            "StreamingHistory_audiobook_0.json": (3, 0, {}, 0, 3),
        },
        2,  # a song, an episode: each twice in one minute (a third play of the song was short)
    ),
}  # fmt: skip


@pytest.fixture
def other_db_url(pg_cluster):
    """A second, empty (migrated) database: where the round trip imports the export."""
    url = pg_cluster.create()
    yield url
    pg_cluster.drop(url)


def spotify_zip(name: str, tmp_path: Path) -> Path:
    """The fixture set as Spotify sends it: its folders zipped (my_spotify_data.zip)."""
    folder = FIXTURES / name
    archive = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*.json")):
            z.write(path, path.relative_to(folder).as_posix())
    return archive


def do_import(url: str, key: int, path: Path, only: str = ""):
    """Import the export at `path` (its files whose name holds `only`) with the defaults."""
    sources, _ = find_sources([str(path)])
    sources = [s for s in sources if only in s.name]
    with psycopg.connect(url) as c:
        return import_export(c, key, sources, ParseOptions(), workers=1)


def music(url: str, key: int) -> list[tuple]:
    """(end second, track by URI or names, ms_played, played_at) oldest first."""
    out = []
    for at, uri, name, artist, ms, *_ in plays_of(url, key):
        song = uri if uri.startswith("spotify:track:") else (name, artist)
        out.append((int(at.timestamp()), song, ms, at))
    return out


def spoken(url: str, key: int) -> list[tuple]:
    """(end second, item by URI or by kind, show and name, ms_played, played_at)."""
    return [
        (int(at.timestamp()), uri or (kind, show.lower(), name.lower()), ms, at)
        for at, kind, uri, show, name, ms in spoken_of(url, key)
    ]


def same_plays(before: list[tuple], after: list[tuple]) -> int:
    """Assert `after` holds `before`'s plays, item by item in end order, ms_played exact and
    the end second the same or (a moved play) at most two later; returns how many moved."""
    assert len(after) == len(before)
    by_item: dict[object, list[list[tuple]]] = defaultdict(lambda: [[], []])
    for side, rows in enumerate((before, after)):
        for sec, item, ms, at in rows:
            by_item[item][side].append((at, sec, ms))
    moved = 0
    for item, (old, new) in by_item.items():
        assert len(old) == len(new), item
        for (_, sec_b, ms_b), (_, sec_a, ms_a) in zip(sorted(old), sorted(new), strict=True):
            assert ms_a == ms_b, item
            assert 0 <= sec_a - sec_b <= 2, item
            moved += sec_a != sec_b
    return moved


def exported_entries(archive: Path) -> dict[str, list[dict]]:
    with zipfile.ZipFile(archive) as z:
        return {name: json.loads(z.read(name)) for name in z.namelist()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_import_counts_each_real_shaped_file_as_its_entries_were_written(
    name, db_url, conn, tmp_path
):
    key = add_user(conn)
    report = do_import(db_url, key, spotify_zip(name, tmp_path))
    got = {
        f.name.rsplit("/", 1)[-1]: (f.entries, f.new, dict(f.skipped), f.episodes, f.chapters)
        for f in report.files
    }
    assert got == EXPECTED[name][0]
    assert len(music(db_url, key)) == sum(v[1] for v in got.values())
    assert len(spoken(db_url, key)) == sum(v[3] + v[4] for v in got.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_round_trip_of_a_real_shaped_export_keeps_every_play_episode_and_chapter(
    name, run, db_url, other_db_url, conn, tmp_path
):
    key = add_user(conn)
    do_import(db_url, key, spotify_zip(name, tmp_path))
    songs, talk = music(db_url, key), spoken(db_url, key)

    done = run("export", "--user", "alice", "--out", "out.zip")
    assert done.code == 0, done.err
    total = len(songs) + len(talk)
    assert done.out.startswith(f"exported {total} plays of user-{key} to out.zip")
    moved = EXPECTED[name][1]
    assert f"\n{moved} plays moved a second later" in done.out

    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    report = do_import(other_db_url, other_key, tmp_path / "out.zip")
    assert report.total("new") == len(songs)
    assert report.total("episodes") + report.total("chapters") == len(talk)
    assert (
        same_plays(songs, music(other_db_url, other_key))
        + same_plays(talk, spoken(other_db_url, other_key))
        == moved
    )

    done = run("export", "--user", "alice", "--format", "csv", "--out", "out.csv")
    assert done.code == 0, done.err
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(songs)  # the `plays` view's rows: music only
    for row, (_, song, ms, at) in zip(rows, songs, strict=True):
        assert row["played_at"] == at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at:%f}"[:3] + "Z"
        assert int(row["ms_played"]) == ms
        assert (row["track_uri"] if isinstance(song, str) else (row["track"], row["artists"])) in (
            song,
            (song[0], song[1]),
        )


def test_episodes_and_chapters_are_written_as_spotify_writes_them(db_url, conn, tmp_path):
    key = add_user(conn)
    do_import(db_url, key, spotify_zip("extended_2024", tmp_path))
    with psycopg.connect(db_url) as c:
        result = export_history(c, key, tmp_path / "out.zip")
    assert (result.episodes, result.chapters) == (5, 4)
    files = exported_entries(tmp_path / "out.zip")
    assert sorted(files) == [
        "Spotify Extended Streaming History/Streaming_History_Audio_2023.json",
        "Spotify Extended Streaming History/Streaming_History_Audio_2024.json",
    ]
    rows = [e for entries in files.values() for e in entries]
    fixture = FIXTURES / "extended_2024/Spotify Extended Streaming History"
    source = json.loads((fixture / "Streaming_History_Audio_2023-2024_0.json").read_text("utf-8"))
    assert all(list(e) == list(source[0]) for e in rows)  # Spotify's fields, in its order
    assert [e["ts"] for e in rows] == sorted(e["ts"] for e in rows)  # merged by end time
    chapters = [e for e in rows if e["audiobook_chapter_uri"]]
    assert [(c["audiobook_title"], c["audiobook_chapter_title"]) for c in chapters] == [
        ("The Lighthouse Keeper", "Chapter 3"),
        ("The Lighthouse Keeper", "Chapter 4"),
        ("Salt and Stone", "Chapter 3"),  # another book's "Chapter 3": its own item
        ("The Lighthouse Keeper", "Chapter 3"),
    ]
    assert all(
        c["spotify_track_uri"] is None and c["episode_name"] is None and c["ms_played"] > 30_000
        for c in chapters
    )
    episodes = [e for e in rows if e["episode_name"]]
    assert [(e["episode_show_name"], e["episode_name"]) for e in episodes] == [
        ("The Quiet Hour", "Ep. 12: Sleep & Memory"),
        ("Garden Talk", "Episode 1"),
        ("Night Drive Stories", "Episode 1"),
        ("The Quiet Hour", "Ep. 13: Dreams (video)"),  # from the video file
        ("The Quiet Hour", "Ep. 12: Sleep & Memory"),
    ]
    assert all(e["spotify_episode_uri"].startswith("spotify:episode:") for e in episodes)
    assert all(e["master_metadata_track_name"] is None for e in episodes + chapters)


def test_account_data_episodes_and_chapters_go_out_without_uri_and_come_back_by_names(
    db_url, other_db_url, conn, tmp_path
):
    key = add_user(conn)
    do_import(db_url, key, spotify_zip("account_2024", tmp_path))
    with psycopg.connect(db_url) as c:
        export_history(c, key, tmp_path / "out.zip")
    rows = [e for entries in exported_entries(tmp_path / "out.zip").values() for e in entries]
    talk = [e for e in rows if e["episode_name"] or e["audiobook_title"]]
    assert len(talk) == 7
    assert all(
        e["spotify_episode_uri"] is None and e["audiobook_chapter_uri"] is None for e in talk
    )
    with psycopg.connect(other_db_url, autocommit=True) as other:
        other_key = add_user(other)
    do_import(other_db_url, other_key, tmp_path / "out.zip")
    with psycopg.connect(other_db_url) as c:
        items = c.execute(
            "select kind, show, name from spoken_items order by kind, show, name"
        ).fetchall()
    assert items == [
        (1, "Garden Talk", "Episode 1"),
        (1, "Night Drive Stories", "Episode 1"),  # two shows' "Episode 1": two items
        (1, "The Quiet Hour", "Ep. 12: Sleep & Memory"),
        (2, "Salt and Stone", "Chapter 3"),
        (2, "The Lighthouse Keeper", "Chapter 3"),
        (2, "The Lighthouse Keeper", "Chapter 4"),
    ]


def test_a_history_of_episodes_only_exports_in_spotify_s_format_but_not_as_csv(
    db_url, conn, tmp_path
):
    key = add_user(conn)
    do_import(db_url, key, spotify_zip("account_2024", tmp_path), only="StreamingHistory_pod")
    with psycopg.connect(db_url) as c:
        result = export_history(c, key, tmp_path / "out.zip")
        assert (result.plays, result.episodes, result.chapters) == (4, 4, 0)
        with pytest.raises(NoPlays):  # the CSV is the `plays` view's: music only
            export_history(c, key, tmp_path / "out.csv", fmt="csv")
    assert not (tmp_path / "out.csv").exists()
