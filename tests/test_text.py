"""Wording shared by every command: one plural rule."""

from __future__ import annotations

from sync.analytics import listening
from sync.analytics import terminal as stats
from sync.text import plural


def test_plural_says_1_day_and_2_days():
    assert plural(1, "day") == "1 day"
    assert plural(0, "day") == "0 days"
    assert plural(1200, "entry", "entries") == "1,200 entries"


def test_stats_streak_of_one_day_is_singular():
    from datetime import date

    week = listening.Period("7d", "last 7 days", date(2025, 12, 26), date(2026, 1, 1))
    s = stats.Stats(user_label="user-1", time_zone="UTC", today=date(2026, 1, 1), period=week)
    s.plays = s.days_listened = s.current_streak = s.longest_streak = 1
    out = stats.render_stats(s)
    assert "current 1 day ·" in out and "longest 1 day" in out
    assert "1 days" not in out
