"""`python -m sync stats`: totals, top artists and tracks, the last 30 days, the heatmap."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from sync.analytics import listening
from sync.analytics import terminal as stats
from sync.store import users as user_store
from tests.analytics.test_analytics import ARTIST_A, ARTIST_B, store, track
from tests.conftest import add_user

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # Saturday, 13:00 in Berlin


@pytest.fixture
def alice(conn) -> user_store.UserRef:
    key = add_user(conn, "alice", "refresh-alice-0001")
    conn.execute("update user_tokens set time_zone = 'Europe/Berlin' where id = %s", (key,))
    duet = track(3, 240_000, artists=(ARTIST_A, ARTIST_B))
    store(conn, key, [
        (datetime(2025, 6, 1, 10, 0, tzinfo=UTC), track(4)),     # last year
        (datetime(2026, 11, 20, 18, 0, tzinfo=UTC), duet),       # Fri 20 Nov, 19:00
        (datetime(2026, 11, 27, 20, 0, tzinfo=UTC), track(2, 180_000, artists=(ARTIST_B,))),
        (datetime(2026, 11, 28, 9, 0, tzinfo=UTC), track(1)),    # Sat 28 Nov, 10:00
        (datetime(2026, 11, 28, 9, 2, tzinfo=UTC), track(1)),    # skipped after 2 minutes
        (datetime(2026, 11, 28, 9, 30, tzinfo=UTC), track(1)),
    ])  # fmt: skip
    return user_store.resolve_user(conn, "alice")


def test_four_weeks_totals_top_lists_chart_and_heatmap(conn, alice):
    s = stats.load_stats(conn, alice, "4w", "user-1", NOW)
    assert (s.period.first_day, s.period.last_day) == (date(2026, 11, 1), date(2026, 11, 28))
    assert (s.plays, s.days_listened) == (5, 3)
    assert s.listening_ms == 240_000 + 180_000 + 200_000 + 120_000 + 200_000
    assert (s.distinct_tracks, s.distinct_artists, s.distinct_albums) == (3, 2, 1)
    assert s.current_streak == 2 and s.longest_streak == 2
    assert s.top_artists == [("Alpha", 4, 760_000), ("Beta", 2, 420_000)]
    assert [t[:3] for t in s.top_tracks] == [
        ("Song 1", "Alpha", 3), ("Song 3", "Alpha, Beta", 1), ("Song 2", "Beta", 1)]  # fmt: skip
    out = stats.render_stats(s)
    lines = out.splitlines()
    assert lines[0] == "Listening of user-1 · last 4 weeks, 2026-11-01 – 2026-11-28 (Europe/Berlin)"
    assert "  Plays           5 on 3 of 28 days" in lines
    assert any(line.startswith("  Listening time  15 min  (all estimated") for line in lines)
    assert "Song 1 — Alpha" in out and "   1  Alpha" in out
    chart = [line for line in lines if re.match(r"  \w{3} \d\d-\d\d  ", line)]
    assert len(chart) == 30
    assert chart[-1].startswith("  Sat 11-28  ████") and chart[-1].endswith("   8")
    assert chart[-2].startswith("  Fri 11-27  ") and chart[-2].endswith("   3")
    assert chart[0].startswith("  Fri 10-30") and chart[0].rstrip().endswith(" 0")
    heat = {line[2:5]: line for line in lines[lines.index(next(
        x for x in lines if x.startswith("Plays by hour"))) + 2:][:7]}  # fmt: skip
    saturday = heat["Sat"]
    cells = saturday[7 : 7 + 48]
    assert cells[20:22] == "██" and cells.replace("█", "").strip() == ""  # hour 10 only
    assert saturday.endswith("      3")
    assert heat["Fri"][7 + 2 * 19 : 7 + 2 * 19 + 2] != "  "  # 19:00 on 20 Nov
    assert heat["Mon"][7:55].strip() == ""


def test_year_and_all_time_periods(conn, alice):
    year = stats.load_stats(conn, alice, "2025", "user-1", NOW)
    assert year.plays == 1 and year.period.label == "2025"
    assert [a for a, _, _ in year.top_artists] == ["Alpha"]
    everything = stats.load_stats(conn, alice, "all", "user-1", NOW)
    assert everything.plays == 6 and everything.period.first_day == date(2025, 6, 1)
    assert everything.heatmap[(6, 10)] == 3  # Saturday 10:00, from the all-time table
    empty = stats.render_stats(stats.load_stats(conn, alice, "1999", "user-1", NOW))
    assert "No plays between 1999-01-01 and 1999-12-31." in empty


@pytest.mark.parametrize(
    "text, key",
    [("4w", "4w"), ("1y", "12m"), ("12M", "12m"), (" all ", "all"), ("2024", "2024"), ("7d", "7d")],
)
def test_period_names(text, key):
    assert listening.parse_period(text) == key


def test_bars_and_shades():
    assert stats.bar(0, 10) == "" and stats.bar(10, 10) == "█" * stats.BAR_WIDTH
    assert stats.bar(8, 80, width=10) == "█" and stats.bar(12, 80, width=10) == "█▌"
    assert stats.bar(1, 1000) == "▏"  # anything above zero shows
    assert [stats.shade(v, 8) for v in (0, 1, 2, 3, 4, 5, 8)] == [" ", "░", "░", "▒", "▒", "▓", "█"]


def test_stats_command_prints_names_locally(run, conn, alice):
    result = run("stats", "--period", "all")
    assert result.code == 0, result.err
    assert "Listening of user-1 · all time" in result.out
    assert "Song 1 — Alpha" in result.out and "Top artists" in result.out


def test_stats_command_errors_are_one_line(run, conn, alice):
    bad = run("stats", "--period", "5x")
    assert bad.code == 2 and "--period '5x' is not a period" in bad.err
    assert bad.err.strip().count("\n") == 0
    add_user(conn, "bob", "refresh-bob-0001")
    several = run("stats")
    assert several.code == 2 and "pass --user ID" in several.err
    assert run("stats", "--user", "user-2").code == 0
    assert run("stats", "--user", "carol").code == 2


def test_help_lists_every_accepted_period(capsys):
    from sync.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["stats", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for period in ("7d", "4w", "6m", "12m", "1y", "all", "2025"):
        assert re.search(rf"\b{period}\b", text), period
        listening.parse_period(period)  # and each one is accepted


def test_readme_documents_the_exit_codes_stats_uses(run, conn, alice):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    row = next(x for x in readme.splitlines() if x.startswith("| `python -m sync stats"))
    documented = set(re.findall(r"\b([0-2])\b", row.rsplit("|", 2)[-2]))
    assert {str(run("stats").code), str(run("stats", "--period", "5x").code)} <= documented


def test_no_plays_in_the_last_30_days_is_one_line_not_30_empty_bars(conn, alice):
    later = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    out = stats.render_stats(stats.load_stats(conn, alice, "all", "user-1", later))
    assert "  No plays in the last 30 days." in out
    assert not [line for line in out.splitlines() if re.match(r"  \w{3} \d\d-\d\d  ", line)]


def test_a_year_shows_that_year_s_streaks(conn, alice):
    key = alice.key
    store(conn, key, [(datetime(2025, 6, d, 10, 0, tzinfo=UTC), track(4)) for d in (2, 3, 4)])
    year = stats.load_stats(conn, alice, "2025", "user-1", NOW)
    assert (year.longest_streak, year.longest_start, year.longest_end) == (
        4, date(2025, 6, 1), date(2025, 6, 4))  # fmt: skip
    assert year.current_streak == 0  # 2025 ended without a streak
    assert "at the end of 2025 0 days · longest 4 days" in stats.render_stats(year)
    now = stats.load_stats(conn, alice, "4w", "user-1", NOW)
    assert (now.current_streak, now.longest_streak) == (2, 4)  # all-time figures otherwise


def test_streaks_count_like_listening_streak():
    d = date(2026, 1, 10)
    days = [d, d + timedelta(1), d + timedelta(3)]
    assert listening.streaks(days, d + timedelta(3)) == (1, 2, d, d + timedelta(1))
    assert listening.streaks(days, d + timedelta(4)) == (1, 2, d, d + timedelta(1))
    assert listening.streaks(days, d + timedelta(5)) == (0, 2, d, d + timedelta(1))
    assert listening.streaks([], d) == (0, 0, None, None)


def test_an_empty_period_is_one_line_naming_the_newest_play_and_periods(conn, alice):
    out = stats.render_stats(stats.load_stats(conn, alice, "1999", "user-1", NOW))
    lines = out.splitlines()
    assert lines[0].startswith("Listening of user-1 · 1999")
    body = [line for line in lines[1:] if line.strip()]
    assert body == [
        "  No plays between 1999-01-01 and 1999-12-31. The newest play is from 2026-11-28: "
        "try --period all or --period 2026."
    ]
    quiet = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)  # 7 weeks after the newest play
    body = stats.render_stats(stats.load_stats(conn, alice, "4w", "user-1", quiet))
    assert [line for line in body.splitlines()[1:] if line.strip()] == [
        "  No plays between 2026-12-24 and 2027-01-20. The newest play is from 2026-11-28: "
        "try --period all or --period 2026."
    ]


def test_no_plays_at_all_says_how_to_get_some(conn):
    add_user(conn, "nobody", "refresh-nobody-0001")
    user = user_store.resolve_user(conn, "nobody")
    out = stats.render_stats(stats.load_stats(conn, user, "all", "user-1", NOW))
    body = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(body) == 1 and body[0].startswith("  No plays yet for user-1:")
    assert "python -m sync run" in body[0] and "python -m sync import" in body[0]
    assert "--period" not in body[0]


def test_listening_time_share_never_says_0_or_100_percent_for_a_mix():
    assert stats.estimated_note(0, 0) == "all exact"
    assert stats.estimated_note(0, 600_000) == "all exact"
    assert stats.estimated_note(600_000, 600_000) == "all estimated"
    assert stats.estimated_note(1, 600_000) == "under 1% estimated"
    assert stats.estimated_note(599_999, 600_000) == "over 99% estimated"
    assert stats.estimated_note(300_000, 600_000) == "50% estimated"
    assert stats.listening_time(0) == "0 min" and stats.listening_time(59_000) == "under 1 min"
    assert stats.listening_time(7 * 60_000) == "7 min"
