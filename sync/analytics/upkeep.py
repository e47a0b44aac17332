"""Listening analytics kept current incrementally, in each user's own time zone.

The writes are sync.store.aggregates' (`refresh_days`, `rebuild`: two SQL calls, in
sql/). This module holds what reads the aggregates for the job and the commands (is a
user stale, is a zone known to the server) and renders the opt-in run-summary section.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from sync.analytics.listening import Kind
from sync.errors import UserError
from sync.text import plural

log = logging.getLogger(__name__)


def is_stale(conn: psycopg.Connection, user_key: int) -> bool:
    """True when the daily plays do not add up to the stored plays (written by other means)."""
    row = conn.execute(
        """select (select count(*) from listening_history where user_id = %(k)s)
                  is distinct from
                  (select coalesce(sum(plays), 0) from listening_days where user_id = %(k)s)""",
        {"k": user_key},
    ).fetchone()
    return bool(row[0])


# -- zones -------------------------------------------------------------
def canonical_zone(zone: str) -> str:
    """The IANA name for `zone` (case-insensitive), or UserError naming the fix."""
    text = zone.strip()
    try:
        zoneinfo.ZoneInfo(text)
        return text
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    lowered = {name.lower(): name for name in zoneinfo.available_timezones()}
    if text.lower() in lowered:
        return lowered[text.lower()]
    raise UserError(
        f"unknown time zone {zone!r}: use an IANA zone name such as Europe/Berlin, "
        "America/New_York or Asia/Kolkata"
    )


def validate_zone(conn: psycopg.Connection, zone: str) -> str:
    """A zone both Python's tzdata and the Postgres server know; returns its IANA spelling."""
    name = canonical_zone(zone)
    ok = conn.execute("select analytics_is_time_zone(%s)", (name,)).fetchone()[0]
    if not ok:
        raise UserError(
            f"the database server does not know the time zone {name!r}: "
            "pick a nearby zone with the same offsets, or update the server's time zone data"
        )
    return name


# -- opt-in run summary section (SYNC_SUMMARY_DETAILS=true) ---------------------
@dataclass(frozen=True)
class UserDetails:
    """What the opt-in summary shows for one user: today's top artists, the last 24 hours."""

    key: int
    time_zone: str
    today: str  # local date, ISO
    plays_today: int
    top_artists: list[tuple[str, int]]  # (name, plays) for the local day
    hours: list[tuple[str, int]]  # (local hour label, plays), oldest first, 24 entries


def summary_details(
    conn: psycopg.Connection, user_keys: Sequence[int], now: datetime | None = None
) -> list[UserDetails]:
    """Read the figures for the opt-in summary section (I/O only; rendering is separate)."""
    now = now or datetime.now(UTC)
    out = []
    for key in user_keys:
        row = conn.execute(
            "select time_zone, (%s::timestamptz at time zone time_zone)::date "
            "from user_tokens where id = %s",
            (now, key),
        ).fetchone()
        if row is None:
            continue
        zone, today = row
        plays_today = conn.execute(
            "select coalesce(sum(plays), 0) from listening_days where user_id = %s and day = %s",
            (key, today),
        ).fetchone()[0]
        top = conn.execute(
            """select a.name, t.plays from listening_top(%s, %s::smallint, %s, %s, 5) t
                 join artists a on a.id = t.entity_id order by t.rank""",
            (key, Kind.ARTIST, today, today),
        ).fetchall()
        # plays per local hour (a half-hour zone's hours start at :30 UTC), last 24 hours
        this_hour = conn.execute(
            "select date_trunc('hour', %s::timestamptz at time zone %s)", (now, zone)
        ).fetchone()[0]
        slots = [this_hour - timedelta(hours=23 - i) for i in range(24)]
        counts = dict(
            conn.execute(
                """select date_trunc('hour', played_at at time zone %s), count(*)
                     from listening_history
                    where user_id = %s and played_at > %s::timestamptz - interval '26 hours'
                    group by 1""",
                (zone, key, now),
            ).fetchall()
        )
        hours = [(f"{slot:%H}h", counts.get(slot, 0)) for slot in slots]
        out.append(UserDetails(key, zone, today.isoformat(), plays_today, top, hours))
    return out


def _md(text: str) -> str:
    """Escape Markdown so a track or artist name cannot format or link anything."""
    return re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text.replace("\n", " "))


def summary_section(
    conn: psycopg.Connection, users: Sequence[tuple[int, str]], now: datetime | None = None
) -> str:
    """The opt-in run-summary section for these (user key, label) pairs; "" when none."""
    labels = dict(users)
    return details_markdown(summary_details(conn, list(labels), now), labels.__getitem__)


def details_markdown(details: Sequence[UserDetails], name: Callable[[int], str]) -> str:
    """The opt-in per-user section: today's top artists and a Mermaid chart of 24 hours."""
    if not details:
        return ""
    out = [
        "",
        "### Listening (SYNC_SUMMARY_DETAILS is on: keep this repository private)",
        "",
    ]
    for d in details:
        out.append(f"#### {_md(name(d.key))} · {d.today} ({d.time_zone})")
        out.append("")
        if d.top_artists:
            out.append(f"Top artists today ({plural(d.plays_today, 'play')}):")
            out.append("")
            out += [f"{i}. {_md(artist)} ({plays})" for i, (artist, plays) in
                    enumerate(d.top_artists, 1)]  # fmt: skip
        else:
            out.append("No plays yet today.")
        top = max((n for _, n in d.hours), default=0)
        out += [
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "Plays per hour, last 24 hours ({d.time_zone})"',
            "    x-axis [" + ", ".join(f'"{label}"' for label, _ in d.hours) + "]",
            f'    y-axis "plays" 0 --> {max(top, 1)}',
            "    bar [" + ", ".join(str(n) for _, n in d.hours) + "]",
            "```",
            "",
        ]
    return "\n".join(out) + "\n"
