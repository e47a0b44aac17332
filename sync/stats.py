"""`sync stats`: listening statistics in the terminal, from the analytics tables.

This is a local command, so it shows track and artist names; the job's logs and run
summaries never do (unless the owner opts in, see SYNC_SUMMARY_DETAILS). Reading is
separate from rendering: `load_stats` queries, `render_stats` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

from sync.errors import UserError
from sync.store.users import UserRef
from sync.text import plural

TOP_N = 10
CHART_DAYS = 30
BAR_WIDTH = 40
NAME_WIDTH = 44
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EIGHTHS = " ▏▎▍▌▋▊▉"
SHADES = " ░▒▓█"
PERIOD_HELP = "use 7d, 4w, 6m, 1y (or 12m), all, or a year like 2025"
_NAMED = {"7d": "last 7 days", "4w": "last 4 weeks", "6m": "last 6 months", "12m": "last 12 months"}


@dataclass(frozen=True)
class Period:
    key: str  # 7d, 4w, 6m, 12m, all or YYYY
    label: str
    first_day: date
    last_day: date


def parse_period(text: str) -> str:
    """Normalise --period to a key of listening_periods(); UserError when unknown."""
    key = text.strip().lower()
    key = {"1y": "12m", "28d": "4w", "1w": "7d"}.get(key, key)
    if key in _NAMED or key == "all":
        return key
    if re.fullmatch(r"\d{4}", key) and 1900 <= int(key) <= 2999:
        return key
    raise UserError(f"--period {text!r} is not a period: {PERIOD_HELP}")


@dataclass
class Stats:
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
    top_artists: list[tuple[str, int, int]] = field(default_factory=list)  # name, plays, ms
    top_tracks: list[tuple[str, str, int, int]] = field(default_factory=list)  # +artists
    days: list[tuple[date, int, int]] = field(default_factory=list)  # day, plays, ms
    heatmap: dict[tuple[int, int], int] = field(default_factory=dict)  # (weekday, hour) -> plays


def load_stats(
    conn: psycopg.Connection,
    user: UserRef,
    period_key: str,
    label: str,
    now: datetime | None = None,
) -> Stats:
    """Everything `stats` prints, read from the analytics tables (a handful of small queries)."""
    now = now or datetime.now(UTC)
    today = conn.execute(  # the server's zone rules, like the aggregates
        "select (%s::timestamptz at time zone %s)::date", (now, user.time_zone)
    ).fetchone()[0]
    k = user.key
    if re.fullmatch(r"\d{4}", period_key):
        year = int(period_key)
        period = Period(period_key, period_key, date(year, 1, 1), date(year, 12, 31))
    else:
        first, last = conn.execute(
            "select first_day, last_day from listening_periods(%s, %s, %s) where period = %s",
            (k, user.time_zone, today, period_key),
        ).fetchone()
        name = _NAMED.get(period_key, "all time")
        period = Period(period_key, name, first, last)
    s = Stats(label, user.time_zone, today, period)
    row = conn.execute(
        "select plays, listening_ms, estimated_ms, days_listened, distinct_tracks, "
        "distinct_artists, distinct_albums from listening_summary(%s, %s, %s)",
        (k, period.first_day, period.last_day),
    ).fetchone()
    (s.plays, s.listening_ms, s.estimated_ms, s.days_listened, s.distinct_tracks,
     s.distinct_artists, s.distinct_albums) = row  # fmt: skip
    if period.key.isdigit():  # that year's streaks, as of its last day (or today)
        days = [d for (d,) in conn.execute(
            "select day from listening_days where user_id = %s and day between %s and %s",
            (k, period.first_day, period.last_day))]  # fmt: skip
        streak = streaks(days, min(today, period.last_day))
        s.current_streak, s.longest_streak, s.longest_start, s.longest_end = streak
    else:
        s.current_streak, _, s.longest_streak, s.longest_start, s.longest_end = conn.execute(
            "select * from listening_streak(%s, %s, %s)", (k, user.time_zone, today)
        ).fetchone()
    s.top_artists = conn.execute(
        """select a.name, t.plays, t.listening_ms
             from listening_top(%s, 2::smallint, %s, %s, %s) t
             join artists a on a.id = t.entity_id order by t.rank""",
        (k, period.first_day, period.last_day, TOP_N),
    ).fetchall()
    s.top_tracks = conn.execute(
        """select tr.name,
                  coalesce((select string_agg(a.name, ', ' order by ta.position)
                              from track_artists ta join artists a on a.id = ta.artist_id
                             where ta.track_id = tr.id), ''),
                  t.plays, t.listening_ms
             from listening_top(%s, 1::smallint, %s, %s, %s) t
             join tracks tr on tr.id = t.entity_id order by t.rank""",
        (k, period.first_day, period.last_day, TOP_N),
    ).fetchall()
    first_chart_day = today - timedelta(days=CHART_DAYS - 1)
    stored = {
        d: (p, ms)
        for d, p, ms in conn.execute(
            "select day, plays, listening_ms from listening_days "
            "where user_id = %s and day between %s and %s",
            (k, first_chart_day, today),
        )
    }
    s.days = [
        (d, *stored.get(d, (0, 0)))
        for d in (first_chart_day + timedelta(days=i) for i in range(CHART_DAYS))
    ]
    if period_key == "all":
        rows = conn.execute(
            "select weekday, hour, plays from listening_hour_weekday where user_id = %s", (k,)
        ).fetchall()
    else:
        rows = conn.execute(
            """select extract(isodow from d.day)::int, h.n - 1, sum(h.plays)::bigint
                 from listening_days d
                cross join lateral unnest(d.hour_plays) with ordinality as h(plays, n)
                where d.user_id = %s and d.day between %s and %s
                group by 1, 2""",
            (k, period.first_day, period.last_day),
        ).fetchall()
    s.heatmap = {(int(w), int(h)): int(p) for w, h, p in rows}
    return s


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


# -- rendering (pure) -------------------------------------------------------------
def duration(ms: int) -> str:
    minutes = int(ms) // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes:02d} min" if hours else f"{minutes} min"


def fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def bar(value: float, top: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a character."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def shade(value: int, top: int) -> str:
    if value <= 0 or top <= 0:
        return " "
    return SHADES[min(4, 1 + (4 * value - 1) // top)]


def _chart(days: list[tuple[date, int, int]]) -> list[str]:
    """The last days' minutes as bars; one line when there were no plays at all."""
    out = [f"Last {CHART_DAYS} days (minutes listened)"]
    if not any(plays for _, plays, _ in days):
        return [*out, f"  No plays in the last {CHART_DAYS} days.", ""]
    top_ms = max(ms for _, _, ms in days)
    for day, _plays, ms in days:
        minutes = int(ms) // 60_000
        out.append(
            f"  {WEEKDAYS[day.weekday()]} {day:%m-%d}  {bar(ms, top_ms):<{BAR_WIDTH}} {minutes:>5,}"
        )
    return [*out, ""]


def render_stats(s: Stats) -> str:
    p = s.period
    span = f"{p.first_day:%Y-%m-%d} – {p.last_day:%Y-%m-%d}"
    head = p.label if p.key.isdigit() else f"{p.label}, {span}"
    out = [f"Listening of {s.user_label} · {head} ({s.time_zone})", ""]
    if s.plays == 0:
        out.append("  No plays in this period.")
    else:
        total_days = (p.last_day - p.first_day).days + 1
        estimated = ""
        if s.estimated_ms:
            share = round(100 * s.estimated_ms / s.listening_ms) if s.listening_ms else 0
            estimated = f"  ({share}% estimated: API plays carry no listening time)"
        out += [
            f"  Plays           {s.plays:,} on {s.days_listened:,} of {plural(total_days, 'day')}",
            f"  Listening time  {duration(s.listening_ms)}{estimated}",
            f"  Distinct        {s.distinct_tracks:,} tracks · {s.distinct_artists:,} artists"
            f" · {s.distinct_albums:,} albums",
        ]
    longest = f"longest {plural(s.longest_streak, 'day')}"
    if s.longest_start and s.longest_end:
        longest += f" ({s.longest_start:%Y-%m-%d} – {s.longest_end:%Y-%m-%d})"
    now = "current" if p.last_day >= s.today else f"at the end of {p.key}"
    out += [f"  Streak          {now} {plural(s.current_streak, 'day')} · {longest}", ""]

    if s.top_artists:
        out.append(f"Top artists{'':{NAME_WIDTH - 6}}plays        time")
        for i, (name, plays, ms) in enumerate(s.top_artists, 1):
            out.append(
                f"  {i:>2}  {fit(name, NAME_WIDTH):<{NAME_WIDTH}}{plays:>6,}  {duration(ms):>14}"
            )
        out.append("")
    if s.top_tracks:
        out.append(f"Top tracks{'':{NAME_WIDTH - 5}}plays        time")
        for i, (name, artists, plays, ms) in enumerate(s.top_tracks, 1):
            title = f"{name} — {artists}" if artists else name
            out.append(
                f"  {i:>2}  {fit(title, NAME_WIDTH):<{NAME_WIDTH}}{plays:>6,}  {duration(ms):>14}"
            )
        out.append("")

    out += _chart(s.days)

    scope = "all time" if p.key == "all" else p.label
    out.append(f"Plays by hour and weekday (local time, {scope})")
    out.append("       " + "".join(f"{h:02d}    " for h in range(0, 24, 3)).rstrip())
    top_cell = max(s.heatmap.values(), default=0)
    for w in range(1, 8):
        cells = "".join(shade(s.heatmap.get((w, h), 0), top_cell) * 2 for h in range(24))
        total = sum(s.heatmap.get((w, h), 0) for h in range(24))
        out.append(f"  {WEEKDAYS[w - 1]}  {cells}  {total:>7,}")
    out.append(f"  scale: ░ fewest … █ most plays per hour (most: {top_cell:,})")
    return "\n".join(out) + "\n"
