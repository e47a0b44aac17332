"""Shared reads of the analytics tables for the `stats` and `report` commands.

Periods, the user a command means and the hour x weekday figures are computed in one
place so that the terminal statistics and the HTML report always agree.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum

import psycopg

from sync.errors import UserError
from sync.store.users import UserRef

log = logging.getLogger(__name__)


class Kind(IntEnum):
    """The analytics tables' entity kinds (column kind, sql/002_analytics.sql).

    The one home of the codes: Python passes them to SQL as parameters; the SQL functions
    that write or read one kind themselves (sql/repeatable/30, 40, 50) write the numbers,
    and tests/analytics/test_kinds.py checks what they store and return against this enum.
    """

    TRACK = 1
    ARTIST = 2  # every credited artist of the track gets the whole play
    ALBUM = 3


PERIOD_HELP = "use 7d, 4w, 6m, 1y (or 12m), all, or a year like 2025"
NAMED = {"7d": "last 7 days", "4w": "last 4 weeks", "6m": "last 6 months", "12m": "last 12 months"}
# A track's credited artists, in credit order, as one text ('' when none); `tr` is tracks.
TRACK_ARTISTS = """coalesce((select string_agg(a.name, ', ' order by ta.position)
                             from track_artists ta join artists a on a.id = ta.artist_id
                            where ta.track_id = tr.id), '')"""


@dataclass(frozen=True)
class Period:
    key: str  # 7d, 4w, 6m, 12m, all or YYYY
    label: str
    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def parse_period(text: str) -> str:
    """Normalise --period to a key of listening_periods(); UserError when unknown."""
    key = text.strip().lower()
    key = {"1y": "12m", "28d": "4w", "1w": "7d"}.get(key, key)
    if key in NAMED or key == "all":
        return key
    if re.fullmatch(r"\d{4}", key) and 1900 <= int(key) <= 2999:
        return key
    raise UserError(f"--period {text!r} is not a period: {PERIOD_HELP}")


def local_today(conn: psycopg.Connection, zone: str, now: datetime | None = None) -> date:
    """Today in the user's zone, by the server's zone rules (like the aggregates)."""
    now = now or datetime.now(UTC)
    return conn.execute("select (%s::timestamptz at time zone %s)::date", (now, zone)).fetchone()[0]


def resolve_period(conn: psycopg.Connection, user: UserRef, key: str, today: date) -> Period:
    """The local days of a period key, as listening_periods() defines them."""
    if re.fullmatch(r"\d{4}", key):
        year = int(key)
        return Period(key, key, date(year, 1, 1), date(year, 12, 31))
    first, last = conn.execute(
        "select first_day, last_day from listening_periods(%s, %s, %s) where period = %s",
        (user.key, user.time_zone, today, key),
    ).fetchone()
    return Period(key, NAMED.get(key, "all time"), first, last)


def previous_period(period: Period) -> Period | None:
    """The period of the same length just before (the previous year for a year); none for all."""
    if period.key == "all":
        return None
    if period.key.isdigit():
        return resolve_year(int(period.key) - 1)
    last = period.first_day - timedelta(days=1)
    return Period(
        f"before-{period.key}", "the period before", last - timedelta(period.days - 1), last
    )


def resolve_year(year: int) -> Period:
    return Period(str(year), str(year), date(year, 1, 1), date(year, 12, 31))


def hour_weekday(
    conn: psycopg.Connection, user_key: int, period: Period
) -> dict[tuple[int, int], int]:
    """Plays per (ISO weekday, local hour) in the period: all-time table, else the days' hours."""
    if period.key == "all":
        rows = conn.execute(
            "select weekday, hour, plays from listening_hour_weekday where user_id = %s",
            (user_key,),
        ).fetchall()
    else:
        rows = conn.execute(
            """select extract(isodow from d.day)::int, h.n - 1, sum(h.plays)::bigint
                 from listening_days d
                cross join lateral unnest(d.hour_plays) with ordinality as h(plays, n)
                where d.user_id = %s and d.day between %s and %s
                group by 1, 2""",
            (user_key, period.first_day, period.last_day),
        ).fetchall()
    return {(int(w), int(h)): int(p) for w, h, p in rows}


@dataclass(kw_only=True)
class Heading:
    """Whose figures, which period, its totals (listening_summary), streaks up to today
    (a year's: within that year, up to its last day)."""

    user_label: str
    time_zone: str
    today: date
    period: Period
    plays: int = 0
    listening_ms: int = 0
    estimated_ms: int = 0
    days_listened: int = 0
    distinct_tracks: int = 0
    distinct_artists: int = 0
    distinct_albums: int = 0
    current_streak: int = 0
    longest_streak: int = 0
    longest_start: date | None = None
    longest_end: date | None = None


def load_heading(
    conn: psycopg.Connection,
    user: UserRef,
    period_key: str,
    label: str,
    now: datetime | None = None,
) -> Heading:
    """The figures both `stats` and `report` head with, from the analytics functions."""
    today = local_today(conn, user.time_zone, now)
    period = resolve_period(conn, user, period_key, today)
    t = Heading(user_label=label, time_zone=user.time_zone, today=today, period=period)
    (t.plays, t.listening_ms, t.estimated_ms, t.days_listened, t.distinct_tracks,
     t.distinct_artists, t.distinct_albums) = conn.execute(
        "select plays, listening_ms, estimated_ms, days_listened, distinct_tracks, "
        "distinct_artists, distinct_albums from listening_summary(%s, %s, %s)",
        (user.key, period.first_day, period.last_day),
    ).fetchone()  # fmt: skip
    if period.key.isdigit():  # that year's streaks, as of its last day (or today)
        days = [d for (d,) in conn.execute(
            "select day from listening_days where user_id = %s and day between %s and %s",
            (user.key, period.first_day, period.last_day))]  # fmt: skip
        streak = streaks(days, min(today, period.last_day))
        t.current_streak, t.longest_streak, t.longest_start, t.longest_end = streak
    else:
        t.current_streak, _, t.longest_streak, t.longest_start, t.longest_end = conn.execute(
            "select * from listening_streak(%s, %s, %s)", (user.key, user.time_zone, today)
        ).fetchone()
    return t


def streaks(days: list[date], today: date) -> tuple[int, int, date | None, date | None]:
    """(current, longest, longest start, longest end) runs of consecutive days, as
    listening_streak() counts them: the current run ends today or yesterday."""
    current = longest = 0
    start = end = run_start = None
    previous = None
    for day in sorted(days):
        run_start = day if previous is None or day != previous + timedelta(days=1) else run_start
        length = (day - run_start).days + 1
        if length >= longest:
            longest, start, end = length, run_start, day
        previous = day
    if previous is not None and previous >= today - timedelta(days=1):
        current = (previous - run_start).days + 1
    return current, longest, start, end
