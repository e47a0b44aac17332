"""Everything the HTML report shows, read from the analytics tables (never the history).

`load_report` runs a few small queries over per-day aggregates and all-time totals, so
any period of a ten-year history loads in well under a second. Rendering is separate
(sync/reports/html.py) and pure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

from sync.analytics.listening import (
    TRACK_ARTISTS,
    Heading,
    Kind,
    Period,
    hour_weekday,
    load_heading,
    previous_period,
    resolve_year,
)
from sync.analytics.spoken import Spoken, load_spoken
from sync.analytics.terminal import newest_day
from sync.store.users import UserRef

log = logging.getLogger(__name__)

TOP_SHOWN = 10  # visible rows of a top list
TOP_MAX = 50  # rows behind "show more"
REDISCOVER_MONTHS = 6
REDISCOVER_MIN_PLAYS = 5
KINDS = {"artists": Kind.ARTIST, "tracks": Kind.TRACK, "albums": Kind.ALBUM}
IMAGE_PREFIX = "https://i.scdn.co/"  # the only image host the report's CSP allows

# Names (and, for tracks, credited artists) of entities of one kind, by id.
_NAMES = {
    Kind.TRACK: f"""select tr.id, tr.name, {TRACK_ARTISTS}, al.image_url
            from tracks tr left join albums al on al.id = tr.album_id where tr.id = any(%(ids)s)""",
    Kind.ARTIST: "select id, name, '', null from artists where id = any(%(ids)s)",
    # one pass over the albums' tracks (tracks has no index on album_id)
    Kind.ALBUM: """select al.id, al.name, coalesce(x.names, ''), al.image_url
            from albums al
            left join (select tr.album_id, string_agg(distinct a.name, ', ') as names
                         from tracks tr
                         join track_artists ta on ta.track_id = tr.id and ta.position = 0
                         join artists a on a.id = ta.artist_id
                        where tr.album_id = any(%(ids)s) group by tr.album_id) x
              on x.album_id = al.id
           where al.id = any(%(ids)s)""",
}


@dataclass
class Entry:
    """One row of a top list."""

    rank: int
    name: str
    detail: str  # a track's artists, an album's artists; empty for artists
    plays: int
    listening_ms: int
    previous_rank: int | None = None  # rank in the previous period; None: not played then
    image_url: str | None = None  # only with --images, and only from IMAGE_PREFIX
    last_day: date | None = None  # rediscover: the local day of the last play


@dataclass(kw_only=True)
class ReportData(Heading):
    previous: Period | None = None
    generated_at: datetime
    images: bool = False
    days: dict[date, tuple[int, int]] = field(default_factory=dict)  # day -> plays, ms
    calendar_first: date | None = None  # the calendar covers calendar_first..period.last_day
    heatmap: dict[tuple[int, int], int] = field(default_factory=dict)  # (weekday, hour) -> plays
    top: dict[str, list[Entry]] = field(default_factory=dict)  # artists / tracks / albums
    discoveries: list[Entry] = field(default_factory=list)
    discoveries_total: int = 0
    rediscover: list[Entry] = field(default_factory=list)
    spoken: Spoken = field(default_factory=Spoken)  # podcasts and audiobooks, apart from music
    newest_day: date | None = None  # the local day of the newest play (read for empty periods)


def load_report(
    conn: psycopg.Connection,
    user: UserRef,
    period_key: str,
    label: str,
    *,
    images: bool = False,
    now: datetime | None = None,
) -> ReportData:
    """Read the figures of one user and period; names only, never Spotify ids."""
    now = now or datetime.now(UTC)
    r = ReportData(**vars(load_heading(conn, user, period_key, label, now)), generated_at=now)
    r.previous, r.images = previous_period(r.period), images
    k, period = user.key, r.period
    r.spoken = load_spoken(conn, k, period, user.time_zone)
    if not r.plays:  # the page says where the plays are instead; no empty charts to fill
        r.newest_day = newest_day(conn, k)
        return r
    # short periods get a year of context in the calendar
    r.calendar_first = min(period.first_day, period.last_day - timedelta(days=364))
    if period.key == "all":
        r.calendar_first = resolve_year(period.first_day.year).first_day
    r.days = {
        d: (int(p), int(ms))
        for d, p, ms in conn.execute(
            "select day, plays, listening_ms from listening_days "
            "where user_id = %s and day between %s and %s",
            (k, r.calendar_first, period.last_day),
        )
    }
    r.heatmap = hour_weekday(conn, k, period)
    for name, kind in KINDS.items():
        r.top[name] = _top(conn, k, kind, period, r.previous, images)
    if period.key != "all":
        r.discoveries, r.discoveries_total = _discoveries(conn, k, period, images)
    r.rediscover = _rediscover(conn, k, r.today, images)
    log.debug("report data for %s, %s: %d plays", label, period.key, r.plays)
    return r


def _names(
    conn: psycopg.Connection, kind: Kind, ids: list[int], images: bool
) -> dict[int, tuple[str, str, str | None]]:
    rows = conn.execute(_NAMES[kind], {"ids": ids}).fetchall()
    out = {}
    for i, name, detail, url in rows:
        ok = images and isinstance(url, str) and url.startswith(IMAGE_PREFIX)
        out[i] = (name, detail, url if ok else None)
    return out


def _entries(
    conn: psycopg.Connection, kind: Kind, rows: list[tuple[int, int, int, int]], images: bool
) -> list[Entry]:
    """Entries from (rank, entity_id, plays, ms) rows, with names."""
    names = _names(conn, kind, [row[1] for row in rows], images)
    return [
        Entry(rank, *names.get(e, ("(unknown)", "", None))[:2], int(p), int(ms),
              image_url=names.get(e, (None, None, None))[2])
        for rank, e, p, ms in rows
    ]  # fmt: skip


def _top(
    conn: psycopg.Connection,
    k: int,
    kind: Kind,
    period: Period,
    previous: Period | None,
    images: bool,
) -> list[Entry]:
    rows = conn.execute(
        "select rank, entity_id, plays, listening_ms "
        "from listening_top(%s, %s::smallint, %s, %s, %s) order by rank",
        (k, kind, period.first_day, period.last_day, TOP_MAX),
    ).fetchall()
    entries = _entries(conn, kind, rows, images)
    if previous and rows:
        before = dict(
            conn.execute(
                """select entity_id, rank from (
                       select entity_id, row_number() over (
                                  order by plays desc, listening_ms desc, entity_id) as rank
                         from listening_entities(%s, %s::smallint, %s, %s)) r
                    where entity_id = any(%s)""",
                (k, kind, previous.first_day, previous.last_day, [row[1] for row in rows]),
            ).fetchall()
        )
        for entry, row in zip(entries, rows, strict=True):
            entry.previous_rank = before.get(row[1])
    return entries


def _discoveries(
    conn: psycopg.Connection, k: int, period: Period, images: bool
) -> tuple[list[Entry], int]:
    """Artists first played in the period: no play before its first day.

    The all-time totals make this cheap: an artist played in the period is new when its
    total equals its plays in and after the period (the days after are few, or none for
    periods ending today); for early years, reading the days before is shorter.
    """
    lo, hi = conn.execute(
        "select min(day), max(day) from listening_days where user_id = %s", (k,)
    ).fetchone()
    if lo is None:
        return [], 0
    before_days = (period.first_day - lo).days
    after_days = (hi - period.last_day).days
    if after_days <= before_days:
        test = """join listening_entity_totals t
                    on t.user_id = %(k)s and t.kind = %(artist)s and t.entity_id = p.entity_id
                  left join listening_entities(%(k)s, %(artist)s::smallint, %(after)s, %(hi)s) o
                    on o.entity_id = p.entity_id
                 where t.plays = p.plays + coalesce(o.plays, 0)"""
    else:
        test = """left join listening_entities(%(k)s, %(artist)s::smallint, %(lo)s, %(before)s) o
                    on o.entity_id = p.entity_id
                 where o.entity_id is null"""
    rows = conn.execute(
        f"""select (row_number() over (order by p.plays desc, p.listening_ms desc,
                                             p.entity_id))::integer,
                   p.entity_id, p.plays, p.listening_ms, count(*) over ()
              from listening_entities(%(k)s, %(artist)s::smallint, %(first)s, %(last)s) p
              {test}
             order by 1 limit %(n)s""",
        {
            "k": k,
            "first": period.first_day,
            "last": period.last_day,
            "lo": lo,
            "hi": hi,
            "before": period.first_day - timedelta(days=1),
            "after": period.last_day + timedelta(days=1),
            "n": TOP_MAX,
            "artist": Kind.ARTIST,
        },
    ).fetchall()
    total = int(rows[0][4]) if rows else 0
    return _entries(conn, Kind.ARTIST, [row[:4] for row in rows], images), total


def _rediscover(conn: psycopg.Connection, k: int, today: date, images: bool) -> list[Entry]:
    """Much-played tracks not played in the last six months, with the day of their last play."""
    cutoff = conn.execute(
        "select (%s::date - make_interval(months => %s))::date + 1", (today, REDISCOVER_MONTHS)
    ).fetchone()[0]
    rows = conn.execute(
        """with recent as materialized (
               select entity_id
                 from listening_entities(%(k)s, %(track)s::smallint, %(cut)s, %(today)s))
           select (row_number() over (order by t.plays desc, t.listening_ms desc,
                                            t.entity_id))::integer,
                  t.entity_id, t.plays, t.listening_ms
             from listening_entity_totals t
            where t.user_id = %(k)s and t.kind = %(track)s and t.plays >= %(min)s
              and not exists (select 1 from recent r where r.entity_id = t.entity_id)
            order by 1 limit %(n)s""",
        {
            "k": k,
            "cut": cutoff,
            "today": today,
            "min": REDISCOVER_MIN_PLAYS,
            "n": TOP_SHOWN,
            "track": Kind.TRACK,
        },
    ).fetchall()
    entries = _entries(conn, Kind.TRACK, rows, images)
    last = _last_days(conn, k, [row[1] for row in rows], cutoff)
    for entry, row in zip(entries, rows, strict=True):
        entry.last_day = last.get(row[1])
    return entries


def _last_days(conn: psycopg.Connection, k: int, ids: list[int], before: date) -> dict[int, date]:
    """The last local day each track was played before `before`, a year of days at a time
    (most were played not long before), so a ten-year history is rarely read whole."""
    found: dict[int, date] = {}
    hi = before - timedelta(days=1)
    lo_all = conn.execute(
        "select min(day) from listening_days where user_id = %s", (k,)
    ).fetchone()[0]
    while ids and lo_all is not None and hi >= lo_all:
        lo = hi - timedelta(days=365)
        for e, day in conn.execute(
            """select x.e, max(d.day) from listening_day_entities d
                cross join lateral unnest(d.entity_ids) as x(e)
                where d.user_id = %s and d.kind = %s and d.day between %s and %s
                  and d.entity_ids && %s::integer[] and x.e = any(%s)
                group by x.e""",
            (k, Kind.TRACK, lo, hi, ids, ids),
        ):
            found[e] = day
        ids = [i for i in ids if i not in found]
        hi = lo - timedelta(days=1)
    return found
