"""Builders for Spotify API payloads used by the tests and the benchmark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def iso(dt: datetime, millis: bool = True) -> str:
    dt = dt.astimezone(UTC)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def track(n: int, *, artists: int = 1, duration_ms: int = 200_000, local: bool = False) -> dict:
    if local:
        return {
            "type": "track",
            "id": None,
            "uri": f"spotify:local:Local+Artist:Local+Album:Local+Song+{n}:{duration_ms // 1000}",
            "name": f"Local Song {n}",
            "duration_ms": duration_ms,
            "is_local": True,
            "explicit": False,
            "album": {"id": None, "uri": None, "name": "Local Album", "images": []},
            "artists": [{"id": None, "uri": None, "name": "Local Artist"}],
        }
    return {
        "type": "track",
        "id": f"trk{n:019d}",
        "uri": f"spotify:track:trk{n:019d}",
        "name": f"Song {n}",
        "duration_ms": duration_ms,
        "explicit": n % 2 == 0,
        "is_local": False,
        "track_number": 1 + n % 12,
        "disc_number": 1,
        "external_ids": {"isrc": f"USRC1{n:07d}"},
        "album": {
            "id": f"alb{n % 7:019d}",
            "uri": f"spotify:album:alb{n % 7:019d}",
            "name": f"Album {n % 7}",
            "album_type": "album",
            "release_date": "2020-01-01",
            "images": [{"url": f"https://i.example/{n % 7}.jpg", "width": 640}],
        },
        "artists": [
            {"id": f"art{(n + i) % 5:019d}", "uri": f"spotify:artist:art{(n + i) % 5:019d}",
             "name": f"Artist {(n + i) % 5}"}
            for i in range(artists)
        ],
    }  # fmt: skip


def item(played_at: datetime, n: int = 1, millis: bool = True, **track_kw) -> dict:
    return {"track": track(n, **track_kw), "played_at": iso(played_at, millis), "context": None}


def window(newest: datetime, count: int, start_n: int = 0, step: timedelta = timedelta(minutes=4)):
    """`count` items, newest first, ending at `newest`, like Spotify returns them."""
    return [item(newest - i * step, start_n + i) for i in range(count)]


def page(items: list, next_url: str | None = None) -> dict:
    return {
        "items": items,
        "next": next_url,
        "cursors": None if not items else {"after": "1", "before": "0"},
        "limit": 50,
        "href": "https://api.spotify.com/v1/me/player/recently-played?limit=50",
    }
