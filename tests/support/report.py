"""Helpers for the report tests: a small history with awkward names, and an HTML parse."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from sync.store.rows import AlbumRow, ArtistRow
from tests.analytics.test_analytics import store, track
from tests.conftest import add_user

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"quoted\" 'single' `back` & </td></tr></table>",
    "abc\u202edcba right-to-left override",
    "L" * 2000,
]


def hostile_history(conn, user_id: str = "alice", now: datetime | None = None) -> int:
    """A user in Europe/Berlin with plays over two years, names from HOSTILE; returns the key."""
    now = now or datetime.now(UTC)
    key = add_user(conn, user_id, f"refresh-{user_id}-0001")
    conn.execute("update user_tokens set time_zone = 'Europe/Berlin' where id = %s", (key,))
    artists = [ArtistRow(f"spotify:artist:h{i}", f"h{i}", n) for i, n in enumerate(HOSTILE)]
    album = AlbumRow("spotify:album:h", "h", HOSTILE[1], "album", "2020", None)
    tracks = [
        track(10 + i, 180_000 + 1000 * i, artists=(artists[i], artists[(i + 1) % 5]), album=album)
        for i in range(5)
    ]
    tracks = [replace(tr, name=HOSTILE[(i + 2) % 5]) for i, tr in enumerate(tracks)]
    plays = []
    for day in range(0, 700, 3):  # every third day for almost two years
        for n in range(1 + day % 4):
            at = now - timedelta(days=day, hours=n, minutes=7)
            plays.append((at, tracks[(day + n) % 5]))
    plays.append((now - timedelta(days=400), track(99, 200_000, artists=(artists[0],))))
    for _ in range(6):  # a much-played track left aside for more than six months
        plays.append((now - timedelta(days=300, minutes=4 * _), track(98, 200_000)))
    store(conn, key, plays)
    return key


@dataclass
class Page(HTMLParser):
    """Every element with its attributes, the text, and the headline figures."""

    elements: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a))
        if "data-figure" in a:
            self.figures[a["data-figure"]] = int(a["data-value"])

    def handle_data(self, data):
        self.text.append(data)

    def tags(self) -> set[str]:
        return {tag for tag, _ in self.elements}


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p
