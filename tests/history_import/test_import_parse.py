"""Pure parsing of export files: names, formats, skip rules, staging rows, errors."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from sync.history_import.parse import (
    ACCOUNT,
    ACCOUNT_AUDIOBOOK,
    ACCOUNT_PODCAST,
    EXTENDED,
    EXTENDED_VIDEO,
    KIND_NAMED_TRACK,
    KIND_TRACK,
    SPOKEN_CHAPTER,
    SPOKEN_EPISODE,
    ExportFormatError,
    ParseOptions,
    classify,
    parse_file,
    sniff,
)
from tests.support.export_fakes import account, audiobook, dumps, episode, extended, podcast, uri

T0 = datetime(2024, 5, 6, 18, 43, 21, tzinfo=UTC)


def rows(parsed) -> list[tuple]:
    """(end time text, ms played, ref, kind, track, artist, album) per play."""
    return [
        (text, ms, *parsed.refs[ri])
        for text, ms, ri in zip(parsed.at_text, parsed.ms, parsed.ref_idx, strict=True)
    ]


def parse(entries, kind=EXTENDED, name="Streaming_History_Audio_2024_0.json", **options):
    data = entries if isinstance(entries, bytes) else dumps(entries).encode()
    return parse_file(name, data, kind, ParseOptions(**options))


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("Streaming_History_Audio_2019-2021_0.json", EXTENDED),
        ("Spotify Extended Streaming History/Streaming_History_Audio_2024_7.json", EXTENDED),
        ("MyData/endsong_0.json", EXTENDED),
        ("endsong.json", EXTENDED),
        ("Streaming_History_Video_2020-2024.json", EXTENDED_VIDEO),
        ("StreamingHistory_music_0.json", ACCOUNT),
        ("MyData/StreamingHistory_music_12.json", ACCOUNT),
        ("StreamingHistory0.json", ACCOUNT),
        ("StreamingHistory_podcast_0.json", ACCOUNT_PODCAST),
        ("StreamingHistory_audiobook_0.json", ACCOUNT_AUDIOBOOK),
        ("streaming_history_audio_2020_1.JSON", EXTENDED),
        ("MyData/Userdata.json", None),
        ("MyData/Playlist1.json", None),
        ("Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf", None),
        ("__MACOSX/Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json", None),
        ("Spotify Extended Streaming History/._Streaming_History_Audio_2024_0.json", None),
    ],
)
def test_file_names_are_recognised_by_kind(path, kind):
    assert classify(path) == kind


def test_sniffing_a_renamed_file_by_its_first_bytes():
    assert sniff(dumps([extended(T0)]).encode()[:4096]) == EXTENDED
    assert sniff(dumps([account(T0)]).encode()[:4096]) == ACCOUNT
    assert sniff(dumps([podcast(T0)]).encode()[:4096]) == ACCOUNT_PODCAST
    chapter = {"endTime": "2024-05-06 18:43", "audiobookName": "B", "chapterName": "C",
               "msPlayed": 1}  # fmt: skip
    assert sniff(dumps([chapter]).encode()) == ACCOUNT_AUDIOBOOK
    assert sniff(b'{"playlists": []}') is None


def test_extended_rows_keep_end_time_exact_ms_played_and_names():
    parsed = parse([extended(T0, 3, 123_456)])
    assert parsed.entries == 1 and parsed.rows == 1 and not parsed.skipped
    assert rows(parsed) == [
        ("2024-05-06T18:43:21Z", 123_456, uri(3), KIND_TRACK, "Song 3", "Artist 3", "Album 3"),
    ]
    assert parsed.ts_ms == [int(T0.timestamp() * 1000)]
    assert parsed.offset_ms == [0]


def test_extended_skip_rules_each_counted_under_its_first_reason():
    entries = [
        extended(T0, 1),  # kept
        extended(T0, 2, incognito=True),
        extended(T0, 3, 29_999),  # shorter than 30 s
        extended(T0, 4, 30_000),  # exactly 30 s: kept
        episode(T0),
        audiobook(T0),
        {**extended(T0, 5, track_uri=None), "master_metadata_track_name": None},  # no track
        {**episode(T0), "incognito_mode": True},  # a podcast first, incognito second
    ]
    parsed = parse(entries)
    assert parsed.entries == 8
    assert [r[2] for r in rows(parsed)] == [uri(1), uri(4)]
    assert parsed.skipped == {"incognito": 2, "short": 1, "no_track": 1}
    assert [r[0] for r in parsed.spoken] == [SPOKEN_EPISODE, SPOKEN_CHAPTER]  # apart from music


def test_min_seconds_threshold_is_an_option():
    entries = [extended(T0, 1, 5_000), extended(T0, 2, 31_000)]
    assert parse(entries).rows == 1
    assert parse(entries, min_ms=0).rows == 2
    assert parse(entries, min_ms=60_000).skipped == {"short": 2}


def test_row_without_uri_but_with_names_is_a_named_track():
    parsed = parse([extended(T0, 1, track_uri=None, name="Local Song", artist="Me")])
    (row,) = rows(parsed)
    assert row[2:4] == ("spotify:export:Me:Local Song", KIND_NAMED_TRACK)


def test_episodes_and_chapters_are_spoken_rows_not_tracks():
    parsed = parse([episode(T0, 7), audiobook(T0 + timedelta(minutes=20))])
    assert parsed.rows == 0 and parsed.refs == []
    assert parsed.spoken == [
        (SPOKEN_EPISODE, "spotify:episode:ep" + "7".zfill(20), "A Show", "Episode 7",
         "2024-05-06T18:43:21.000Z", 600_000),
        (SPOKEN_CHAPTER, "spotify:chapter:chap000000000000000001", "A Book", "Chapter 1",
         "2024-05-06T19:03:21.000Z", 600_000),
    ]  # fmt: skip


def test_account_data_rows_are_minute_precision_named_tracks():
    parsed = parse(
        [account(T0, 2, 200_000), account(T0, 3, 1_000), podcast(T0)],
        kind=ACCOUNT,
        name="StreamingHistory_music_0.json",
    )
    assert rows(parsed) == [
        ("2024-05-06 18:43", 200_000, "spotify:export:Artist 2:Song 2", KIND_NAMED_TRACK,
         "Song 2", "Artist 2", None),
    ]  # fmt: skip
    assert parsed.ts_ms == [int(T0.replace(second=0).timestamp() * 1000)]
    assert parsed.skipped == {"short": 1}
    assert [r[:4] for r in parsed.spoken] == [(SPOKEN_EPISODE, None, "A Show", "Ep")]


def test_video_files_are_skipped_unless_asked_for_and_podcast_files_are_spoken_rows():
    video = parse([extended(T0), extended(T0, 2)], kind=EXTENDED_VIDEO)
    assert video.rows == 0 and video.skipped == {"video": 2}
    assert parse([episode(T0), extended(T0)], kind=EXTENDED_VIDEO, include_video=True).rows == 1
    pods = parse([podcast(T0)], kind=ACCOUNT_PODCAST, name="StreamingHistory_podcast_0.json")
    assert pods.rows == 0 and pods.skipped == {}
    assert pods.spoken == [(SPOKEN_EPISODE, None, "A Show", "Ep", "2024-05-06T18:43:00.000Z",
                            600_000)]  # fmt: skip


def test_names_are_kept_exactly_even_with_control_characters_and_non_ascii():
    name = "Tab\there\\back\nline – Ærø ✓"
    assert rows(parse([extended(T0, 1, name=name)]))[0][4] == name


def test_duplicates_in_a_file_are_dropped_keeping_the_longer_listening_time():
    entries = [extended(T0, 1, 100_000), extended(T0, 1, 150_000), extended(T0, 1, 90_000)]
    parsed = parse(entries)
    assert parsed.rows == 1 and parsed.ms == [150_000]
    assert parsed.skipped == {"duplicate": 2}


def test_distinct_plays_sharing_an_end_time_are_one_millisecond_apart():
    parsed = parse([extended(T0, 1), extended(T0, 2), extended(T0, 3), extended(T0, 2)])
    assert parsed.offset_ms == [0, 1, 2]
    assert parsed.at_text == ["2024-05-06T18:43:21Z", "2024-05-06T18:43:21.001Z",
                              "2024-05-06T18:43:21.002Z"]  # fmt: skip
    assert parsed.skipped == {"duplicate": 1}


def test_account_plays_in_the_same_minute_differ_by_listening_time():
    same = [account(T0, 1, 100_000), account(T0, 1, 100_000), account(T0, 1, 45_000)]
    parsed = parse(same, kind=ACCOUNT)
    assert parsed.ms == [100_000, 45_000] and parsed.offset_ms == [0, 1]
    assert parsed.skipped == {"duplicate": 1}


def test_times_in_other_iso_forms_are_normalised_to_utc():
    parsed = parse([{**extended(T0), "ts": "2024-05-06T20:43:21+02:00"},
                    {**extended(T0, 2), "ts": "2024-05-06T18:44:00"}])  # fmt: skip
    assert parsed.at_text == ["2024-05-06T18:43:21.000Z", "2024-05-06T18:44:00.000Z"]


def test_malformed_json_names_the_entry_that_broke_it():
    good = dumps([extended(T0 + timedelta(minutes=i), i) for i in range(5)])
    broken = good.replace('"ms_played": 180000,\n    "conn_country"', '"ms_played": 180000\n    '
                          '"conn_country"', 1)  # fmt: skip
    broken = broken.replace('"Song 3"', '"Song 3', 1)  # entry 4 (1-based) loses a quote
    with pytest.raises(ExportFormatError) as info:
        parse(broken.encode())
    assert info.value.entry == 1  # the first broken entry is the first one reported
    assert info.value.name == "Streaming_History_Audio_2024_0.json"
    assert "is not valid JSON" in str(info.value)


def test_truncated_file_names_the_last_entry():
    text = dumps([extended(T0, i) for i in range(3)])
    with pytest.raises(ExportFormatError) as info:
        parse(text[: len(text) - 40].encode())
    assert info.value.entry == 3


def test_bad_entries_are_named_with_a_one_based_index():
    for bad, problem in [
        ("oops", "is not a JSON object"),
        ({**extended(T0), "ts": None}, "'ts' is missing"),
        ({**extended(T0), "ts": "yesterday"}, "'ts' is 'yesterday'"),
        ({**extended(T0), "ts": "2024-13-45T00:00:00Z"}, "not a time like"),
        ({**extended(T0), "ms_played": "lots"}, "'ms_played' is 'lots'"),
        ({**extended(T0), "ms_played": -5}, "'ms_played' is -5"),
    ]:
        with pytest.raises(ExportFormatError) as info:
            parse([extended(T0), extended(T0, 2), bad])
        assert info.value.entry == 3
        assert problem in str(info.value)


def test_not_an_array_and_not_utf8_are_reported():
    with pytest.raises(ExportFormatError, match="not a JSON array"):
        parse(b'{"ts": "2024-01-01T00:00:00Z"}')
    with pytest.raises(ExportFormatError, match="not UTF-8"):
        parse(b"\xff\xfe[\x00]")


def test_format_errors_survive_pickling_from_worker_processes():
    exc = ExportFormatError("f.json", "'ts' is missing", 7)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.name, again.entry, str(again)) == ("f.json", 7, str(exc))


def test_account_data_errors_use_account_field_names():
    with pytest.raises(ExportFormatError, match="'msPlayed' is missing"):
        parse([{"endTime": "2024-05-06 18:43", "trackName": "x", "artistName": "y"}],
              kind=ACCOUNT)  # fmt: skip
    with pytest.raises(ExportFormatError, match="'endTime'"):
        parse([{"endTime": 5, "trackName": "x", "artistName": "y", "msPlayed": 1}], kind=ACCOUNT)


def test_float_ms_played_that_is_whole_is_accepted():
    assert parse([{**extended(T0), "ms_played": 45000.0}]).ms == [45_000]


def test_old_account_files_count_episode_like_plays_and_exclude_shows_by_name():
    from sync.history_import.parse import SKIP_EXCLUDED

    when = datetime(2021, 3, 1, 12, 0, tzinfo=UTC)
    rows = [account(when, 1),  # a song
            account(when + timedelta(hours=1), 2, ms=45 * 60_000, artist="Some Talk Show"),
            account(when + timedelta(hours=2), 3, ms=50 * 60_000, artist="Another Show"),
            account(when + timedelta(hours=3), 4, ms=25 * 60_000)]  # fmt: skip
    data = dumps(rows).encode()
    plain = parse_file("my_spotify_data.zip:MyData/StreamingHistory0.json", data, ACCOUNT,
                       ParseOptions())  # fmt: skip
    assert (plain.rows, plain.episode_like, plain.skipped[SKIP_EXCLUDED]) == (4, 3, 0)
    options = ParseOptions(exclude_shows=frozenset({"some talk show", "another show"}))
    excluded = parse_file("StreamingHistory0.json", data, ACCOUNT, options)
    assert (excluded.rows, excluded.episode_like, excluded.skipped[SKIP_EXCLUDED]) == (2, 1, 2)
    newer = parse_file("StreamingHistory_music_0.json", data, ACCOUNT, ParseOptions())
    assert newer.episode_like == 0  # podcasts have their own file since 2023


@pytest.mark.parametrize("cut", [3, 40, 300, 333])
def test_a_truncated_file_says_it_looks_truncated_and_how_to_fix_it(cut):
    """However the file was cut (in a string, a number, between entries), one plain reason."""
    text = dumps([extended(T0, i) for i in range(3)])
    with pytest.raises(ExportFormatError) as info:
        parse(text[: len(text) - cut].encode())
    message = str(info.value)
    assert message.startswith("Streaming_History_Audio_2024_0.json: entry ")
    assert "looks truncated or corrupt" in message
    assert "download the export again" in message and "extract it again" in message
    assert "at at" not in message and "\n" not in message


def test_json_errors_never_say_at_twice():
    text = dumps([extended(T0, i) for i in range(3)]).replace('"Song 1"', '"Song 1', 1)
    with pytest.raises(ExportFormatError) as info:
        parse(text.encode())  # a line break inside a string: corrupt, not truncated
    message = str(info.value)
    assert "Invalid control character at line " in message
    assert "truncated" not in message


def test_importing_a_truncated_file_is_one_line_exit_2_and_writes_nothing(run, conn, tmp_path):
    from tests.conftest import add_user

    add_user(conn, "alice", "refresh-alice-0001")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Streaming_History_Audio_2024_0.json").write_text(dumps([extended(T0, 9)]))
    text = dumps([extended(T0 + timedelta(minutes=i), i) for i in range(3)])
    (folder / "Streaming_History_Audio_2024_1.json").write_text(text[:-50])
    result = run("import", str(folder), "--user", "alice", "--no-progress")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("error: Streaming_History_Audio_2024_1.json: entry 3: ")
    assert "looks truncated or corrupt" in result.err and "at at" not in result.err
    assert conn.execute("select count(*) from listening_history").fetchone()[0] == 0
    assert conn.execute("select count(*) from tracks").fetchone()[0] == 0


def test_rows_of_a_video_file_count_under_the_first_reason_that_applies():
    """docs/import.md's order holds in a Streaming_History_Video_* file too: its episode
    and chapter rows are kept (apart from music) before the rest counts as video."""
    entries = [episode(T0), extended(T0, 2), audiobook(T0 + timedelta(minutes=20))]
    name = "Streaming_History_Video_2020-2024.json"
    video = parse(entries, kind=EXTENDED_VIDEO, name=name)
    assert video.rows == 0
    assert video.skipped == {"video": 1}
    assert [r[0] for r in video.spoken] == [SPOKEN_EPISODE, SPOKEN_CHAPTER]
    # video asked for: the track is stored, the episode and the chapter are still spoken
    both = parse(entries, kind=EXTENDED_VIDEO, name=name, include_video=True)
    assert [r[3] for r in rows(both)] == [KIND_TRACK]
    assert both.skipped == {} and len(both.spoken) == 2
