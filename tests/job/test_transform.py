"""Pure item -> row transform: times, tracks, local files, malformed items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sync.job.transform import SkipItem, item_to_play, parse_items, parse_played_at
from tests.support.spotify_fakes import item, track


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-04-26T12:58:27.757Z", datetime(2021, 4, 26, 12, 58, 27, 757000, tzinfo=UTC)),
        ("2021-04-13T12:27:54Z", datetime(2021, 4, 13, 12, 27, 54, tzinfo=UTC)),
        ("2021-04-13T12:27:54.5Z", datetime(2021, 4, 13, 12, 27, 54, 500000, tzinfo=UTC)),
        ("2021-04-13T14:27:54.000+02:00", datetime(2021, 4, 13, 12, 27, 54, tzinfo=UTC)),
    ],
)
def test_played_at_parses_with_and_without_milliseconds(raw, expected):
    parsed = parse_played_at(raw)
    assert parsed == expected
    assert parsed.utcoffset().total_seconds() == 0


def test_played_at_keeps_milliseconds_and_drops_finer_digits():
    parsed = parse_played_at("2021-04-26T12:58:27.757912Z")
    assert parsed.microsecond == 757000


@pytest.mark.parametrize("raw", [None, "", "yesterday", "2021-13-45T99:00:00Z", 1619441907])
def test_unreadable_played_at_is_a_skip(raw):
    with pytest.raises(SkipItem):
        parse_played_at(raw)


def test_item_becomes_a_play_with_track_album_and_artists():
    at = datetime(2026, 11, 1, 8, 0, 0, 123000, tzinfo=UTC)
    play = item_to_play(item(at, 7, artists=2))
    assert play.played_at == at
    t = play.track
    assert t.uri == "spotify:track:trk0000000000000000007"
    assert t.spotify_id == "trk0000000000000000007"
    assert (t.duration_ms, t.is_local, t.isrc) == (200_000, False, "USRC10000007")
    assert t.album.uri == "spotify:album:alb0000000000000000000"
    assert [a.uri for a in t.artists] == [
        "spotify:artist:art0000000000000000002",
        "spotify:artist:art0000000000000000003",
    ]


def test_local_file_is_kept_with_its_local_uri():
    play = item_to_play(item(datetime(2026, 11, 1, tzinfo=UTC), 3, local=True))
    t = play.track
    assert t.is_local is True
    assert t.spotify_id is None
    assert t.uri.startswith("spotify:local:")
    assert t.album.uri == "spotify:local-album:Local Artist:Local Album"
    assert [a.uri for a in t.artists] == ["spotify:local-artist:Local Artist"]


def test_malformed_items_are_counted_and_skipped():
    at = datetime(2026, 11, 1, tzinfo=UTC)
    good = item(at, 1)
    episode = {"track": {**track(2), "type": "episode"}, "played_at": "2026-11-01T00:01:00Z"}
    items = [
        good,
        {"track": None, "played_at": "2026-11-01T00:02:00Z"},  # no track
        {"played_at": "2026-11-01T00:03:00Z"},  # no track key
        {"track": track(3), "played_at": "not a time"},  # unreadable time
        {"track": {"name": "no id no uri"}, "played_at": "2026-11-01T00:04:00Z"},
        episode,
        "not even an object",
    ]
    plays, skipped = parse_items(items)
    assert [p.played_at for p in plays] == [at]
    assert skipped == 6


def test_items_at_a_stored_end_time_are_neither_parsed_nor_returned():
    t0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    items = [item(t0 - timedelta(minutes=4 * i), i) for i in range(8)]
    items.insert(3, {"played_at": "garbage", "track": None})  # still counted as skipped
    every, skipped = parse_items(items)
    assert skipped == 1 and len(every) == 8
    newest_first = tuple(p.played_at for p in every)
    # stored: plays 2, 3, 5 and 6 (4 is a gap: a late play); 0 and 1 are new; 7 is older
    # than every stored end time the claim read, so it is returned too
    recent = tuple(newest_first[i] for i in (2, 3, 5, 6))
    plays, skipped = parse_items(items, recent)
    assert [newest_first.index(p.played_at) for p in plays] == [0, 1, 4, 7]
    assert skipped == 1
    # the database hands back its own tzinfo: the same instants are still recognised
    other_zone = tuple(t.astimezone(timezone(timedelta(hours=1))) for t in recent)
    assert parse_items(items, other_zone) == (plays, 1)
