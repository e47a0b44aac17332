"""The pure planner that decides how export plays meet stored plays (history_import/match)."""

from __future__ import annotations

from sync.history_import.match import Staged, Stored, plan
from sync.store.sources import (
    MATCH_TOLERANCE_MS,
    SOURCE_ACCOUNT,
    SOURCE_API,
    SOURCE_EXTENDED,
    song_key,
)

K = song_key("Song", "Artist")
S = 1_000  # a second, in ms


def staged(row: int, ts: int, track: int = 1, key: str = K, ms: int = 100_000) -> Staged:
    return Staged(row, ts, track, key, ms)


def api(at: int, track: int = 1, key: str = K, ms: int | None = None) -> Stored:
    return Stored(at, track, SOURCE_API, ms, key)


def test_song_key_ignores_case_and_tolerates_missing_names():
    assert song_key("Hello", "ADELE") == song_key("hello", "Adele")
    assert song_key(None, None) == "\x1f"


def test_tolerance_edges_for_an_extended_play():
    tol = MATCH_TOLERANCE_MS
    # the export's second is [ts, ts + 1 s): the gap is measured from its edges
    assert plan([staged(0, 0)], [api(S + tol)], SOURCE_EXTENDED).fill == [(S + tol, 100_000)]
    assert plan([staged(0, 0)], [api(S + tol + 1)], SOURCE_EXTENDED).new == [(0, 0)]
    assert plan([staged(0, 0)], [api(-tol)], SOURCE_EXTENDED).fill == [(-tol, 100_000)]
    assert plan([staged(0, 0)], [api(-tol - 1)], SOURCE_EXTENDED).new == [(0, 0)]


def test_account_minute_covers_its_whole_minute():
    tol = MATCH_TOLERANCE_MS
    inside = plan([staged(0, 0)], [api(60 * S + tol)], SOURCE_ACCOUNT)
    assert inside.fill and not inside.new
    outside = plan([staged(0, 0)], [api(60 * S + tol + 1)], SOURCE_ACCOUNT)
    assert outside.new == [(0, 0)] and not outside.fill


def test_same_song_by_track_id_or_by_names():
    by_id = plan([staged(0, 0, track=1, key="other")], [api(2 * S, track=1)], SOURCE_EXTENDED)
    by_name = plan([staged(0, 0, track=1)], [api(2 * S, track=2)], SOURCE_EXTENDED)
    neither = plan([staged(0, 0, track=1, key="x")], [api(2 * S, track=2, key="y")],
                   SOURCE_EXTENDED)  # fmt: skip
    assert by_id.fill and by_name.fill and not neither.fill


def test_nearest_pairs_win_and_pairs_are_one_to_one():
    # two plays of a 40 s song in both sources: each pairs with its own, not the first one
    result = plan([staged(0, 0, ms=40_000), staged(1, 40 * S, ms=39_000)],
                  [api(40 * S + 400), api(300)], SOURCE_EXTENDED)  # fmt: skip
    assert sorted(result.fill) == [(300, 40_000), (40 * S + 400, 39_000)]
    assert result.new == []
    # one synced play, two export plays: the nearer one matches, the other is new
    lone = plan([staged(0, 0), staged(1, 60 * S)], [api(58 * S)], SOURCE_EXTENDED)
    assert lone.fill == [(58 * S, 100_000)] and lone.new == [(0, 0)]


def test_same_format_matches_only_the_same_second_or_minute():
    again = Stored(5, 1, SOURCE_EXTENDED, 100_000, K)  # imported before, 5 ms shifted
    assert plan([staged(0, 0)], [again], SOURCE_EXTENDED).already == [0]
    later = Stored(S, 1, SOURCE_EXTENDED, 100_000, K)  # the next second: another play
    assert plan([staged(0, 0)], [later], SOURCE_EXTENDED).new == [(0, 0)]
    minute = Stored(59 * S, 1, SOURCE_ACCOUNT, 100_000, K)
    assert plan([staged(0, 0)], [minute], SOURCE_ACCOUNT).already == [0]


def test_api_play_with_ms_already_counts_as_stored():
    result = plan([staged(0, 0)], [api(500, ms=99_000)], SOURCE_EXTENDED)
    assert result.already == [0] and not result.fill


def test_extended_replaces_account_data_but_not_the_other_way_round():
    acc = Stored(0, 7, SOURCE_ACCOUNT, 100_000, K)
    up = plan([staged(0, 41 * S)], [acc], SOURCE_EXTENDED)
    assert up.replace == [0] and up.new == [(0, 41 * S)]
    ext = Stored(41 * S, 1, SOURCE_EXTENDED, 100_000, K)
    assert plan([staged(0, 0)], [ext], SOURCE_ACCOUNT).already == [0]


def test_new_plays_take_the_next_free_millisecond():
    other = api(0, track=9, key="other")  # another song ends exactly then
    result = plan([staged(0, 0, track=2, key="a"), staged(1, 0, track=3, key="b")], [other],
                  SOURCE_EXTENDED)  # fmt: skip
    assert result.new == [(0, 1), (1, 2)]


def test_a_second_without_free_milliseconds_is_reported():
    full = [api(k, track=9, key="other") for k in range(S)]
    result = plan([staged(0, 0, track=2, key="a")], full, SOURCE_EXTENDED)
    assert result.no_slot == [0] and result.new == []


def test_offsets_record_api_minus_export_time():
    result = plan([staged(0, 10 * S)], [api(10 * S + 1_700)], SOURCE_EXTENDED)
    assert result.offsets_ms == [1_700]
