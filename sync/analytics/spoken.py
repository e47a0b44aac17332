"""Podcasts and audiobooks for `stats` and the report: hours per show (book), top shows.

Read straight from spoken_plays (sql/009_spoken_plays.sql), apart from music: no music
figure reads these tables, and these figures never read music's. One query a period;
a user has few shows, so every show's total comes back and the top is cut here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from sync.analytics.listening import Period

TOP_SHOWS = 10
KIND_LABEL = {1: "podcast", 2: "audiobook"}  # spoken_items.kind

# The period's local days in the user's zone, like the music figures; "all" has no bounds
# (its days are music's first and last, and spoken plays may lie outside them).
_BY_SHOW = """
select i.kind, coalesce(i.show, ''), count(*), sum(p.ms_played)::bigint
  from spoken_plays p join spoken_items i on i.id = p.item_id
 where p.user_id = %(user)s
   and (%(all)s or (p.played_at >= %(first)s::date::timestamp at time zone %(zone)s
                    and p.played_at < (%(last)s::date + 1)::timestamp at time zone %(zone)s))
 group by 1, 2
 order by 4 desc, 3 desc, 2, 1
"""


@dataclass
class Spoken:
    """A period's episode and chapter plays: totals, and the shows (books) by time."""

    plays: int = 0
    listening_ms: int = 0
    shows: int = 0  # distinct shows and books
    top: list[tuple[str, str, int, int]] = field(default_factory=list)  # kind, show, plays, ms


def load_spoken(conn: psycopg.Connection, user_key: int, period: Period, zone: str) -> Spoken:
    """The period's podcasts and audiobooks of the user (one query)."""
    rows = conn.execute(
        _BY_SHOW,
        {"user": user_key, "all": period.key == "all", "first": period.first_day,
         "last": period.last_day, "zone": zone},
    ).fetchall()  # fmt: skip
    return Spoken(
        plays=sum(r[2] for r in rows),
        listening_ms=sum(r[3] for r in rows),
        shows=len(rows),
        top=[(KIND_LABEL[k], show, plays, ms) for k, show, plays, ms in rows[:TOP_SHOWS]],
    )


def hours(ms: int) -> str:
    """Listening time in hours, one decimal: what "hours per show" reads."""
    return f"{ms / 3_600_000:,.1f} h"
