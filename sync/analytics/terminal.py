"""`sync stats`: listening statistics in the terminal, from the analytics tables.

This is a local command, so it shows track and artist names; the job's logs and run
summaries never do (unless the owner opts in, see SYNC_SUMMARY_DETAILS). Reading is
separate from rendering: `load_stats` queries, `render_stats` is a pure function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from sync.analytics.listening import (
    TRACK_ARTISTS,
    Heading,
    Kind,
    Period,
    hour_weekday,
    load_heading,
)
from sync.analytics.spoken import Spoken, hours, load_spoken
from sync.store.users import UserRef
from sync.text import plural

TOP_N = 10
CHART_DAYS = 30
BAR_WIDTH = 40
NAME_WIDTH = 44
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EIGHTHS = " ▏▎▍▌▋▊▉"
SHADES = " ░▒▓█"


@dataclass(kw_only=True)
class Stats(Heading):
    top_artists: list[tuple[str, int, int]] = field(default_factory=list)  # name, plays, ms
    top_tracks: list[tuple[str, str, int, int]] = field(default_factory=list)  # +artists
    days: list[tuple[date, int, int]] = field(default_factory=list)  # day, plays, ms
    heatmap: dict[tuple[int, int], int] = field(default_factory=dict)  # (weekday, hour) -> plays
    newest_day: date | None = None  # the local day of the newest play (read for empty periods)
    spoken: Spoken = field(default_factory=Spoken)  # podcasts and audiobooks, apart from music


def newest_day(conn: psycopg.Connection, user_key: int) -> date | None:
    """The local day of the user's newest play, None when there is none."""
    return conn.execute(
        "select max(day) from listening_days where user_id = %s", (user_key,)
    ).fetchone()[0]


def load_stats(
    conn: psycopg.Connection,
    user: UserRef,
    period_key: str,
    label: str,
    now: datetime | None = None,
) -> Stats:
    """Everything `stats` prints, read from the analytics tables (a handful of small queries)."""
    s = Stats(**vars(load_heading(conn, user, period_key, label, now)))
    k, period, today = user.key, s.period, s.today
    s.spoken = load_spoken(conn, k, period, user.time_zone)
    if not s.plays:  # one line says so; nothing else to read
        s.newest_day = newest_day(conn, k)
        return s
    s.top_artists = conn.execute(
        """select a.name, t.plays, t.listening_ms
             from listening_top(%s, %s::smallint, %s, %s, %s) t
             join artists a on a.id = t.entity_id order by t.rank""",
        (k, Kind.ARTIST, period.first_day, period.last_day, TOP_N),
    ).fetchall()
    s.top_tracks = conn.execute(
        f"""select tr.name, {TRACK_ARTISTS}, t.plays, t.listening_ms
             from listening_top(%s, %s::smallint, %s, %s, %s) t
             join tracks tr on tr.id = t.entity_id order by t.rank""",
        (k, Kind.TRACK, period.first_day, period.last_day, TOP_N),
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
    s.heatmap = hour_weekday(conn, k, period)
    return s


# -- rendering (pure) -------------------------------------------------------------
def duration(ms: int) -> str:
    minutes = int(ms) // 60_000
    hours, minutes = divmod(minutes, 60)
    return f"{hours:,} h {minutes:02d} min" if hours else f"{minutes} min"


def listening_time(ms: int) -> str:
    """A total listening time: like duration(), but a few seconds are not "0 min"."""
    return "under 1 min" if 0 < ms < 60_000 else duration(ms)


def estimated_note(estimated_ms: int, listening_ms: int) -> str:
    """How much of a listening time is estimated (Web API plays carry no listening time;
    imported plays are exact); a mix never reads as 0% or 100%."""
    if estimated_ms <= 0:
        return "all exact"
    if estimated_ms >= listening_ms:
        return "all estimated"
    share = 100 * estimated_ms / listening_ms
    if share < 1:
        return "under 1% estimated"
    if share > 99:
        return "over 99% estimated"
    return f"{round(share)}% estimated"


def no_plays_text(period: Period, label: str, newest: date | None) -> str:
    """What an empty period says, in `stats` and the report: where the plays are instead,
    or, with none at all, how to get some."""
    if newest is None:
        return (
            f"No plays yet for {label}: once signed in (python -m sync login), each "
            "python -m sync run stores the latest plays; python -m sync import loads the "
            "whole history from Spotify's data export."
        )
    other = "" if period.key == str(newest.year) else f" or --period {newest.year}"
    return (
        f"No plays between {period.first_day:%Y-%m-%d} and {period.last_day:%Y-%m-%d}. "
        f"The newest play is from {newest:%Y-%m-%d}: try --period all{other}."
    )


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
        out.append("  " + no_plays_text(p, s.user_label, s.newest_day))
        return "\n".join(out + _spoken_lines(s.spoken)) + "\n"
    total_days = (p.last_day - p.first_day).days + 1
    estimated = ""
    if s.estimated_ms:
        note = estimated_note(s.estimated_ms, s.listening_ms)
        estimated = f"  ({note}: API plays carry no listening time)"
    out += [
        f"  Plays           {s.plays:,} on {s.days_listened:,} of {plural(total_days, 'day')}",
        f"  Listening time  {listening_time(s.listening_ms)}{estimated}",
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
    return "\n".join(out + _spoken_lines(s.spoken)) + "\n"


def _spoken_lines(sp: Spoken) -> list[str]:
    """Podcasts and audiobooks, apart from music; nothing when the period has none."""
    if not sp.plays:
        return []
    out = [
        "",
        "Podcasts and audiobooks (not in the music figures above)",
        f"  {plural(sp.plays, 'play')} · {hours(sp.listening_ms)} · "
        f"{plural(sp.shows, 'show or book', 'shows and books')}",
        f"Top shows and books{'':{NAME_WIDTH - 14}}plays        time",
    ]
    for i, (kind, show, plays, ms) in enumerate(sp.top, 1):
        title = f"{show or '(no name)'} ({kind})"
        out.append(f"  {i:>2}  {fit(title, NAME_WIDTH):<{NAME_WIDTH}}{plays:>6,}  {hours(ms):>14}")
    return out
