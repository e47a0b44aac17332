"""Builders for Spotify data-export files (extended streaming history and account data).

Entries carry every field Spotify writes, in Spotify's order, so parsing is exercised
on realistic input. Track numbering matches tests/support/spotify_fakes.py: export track `n` is
the same song as the Web API's `track(n)` (same URI, name and primary artist).
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path


def ts(dt: datetime) -> str:
    """Extended history time: UTC, whole seconds (Spotify truncates)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def end_time(dt: datetime) -> str:
    """Account-data time: UTC, whole minutes."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def uri(n: int) -> str:
    return f"spotify:track:trk{n:019d}"


def extended(
    when: datetime,
    n: int = 1,
    ms: int = 180_000,
    *,
    incognito: bool = False,
    name: str | None = None,
    artist: str | None = None,
    album: str | None = None,
    track_uri: str | None | bool = True,
) -> dict:
    """One extended-history entry for API-compatible track `n` (see module docstring)."""
    return {
        "ts": ts(when),
        "platform": "android",
        "ms_played": ms,
        "conn_country": "DE",
        "ip_addr": "192.0.2.10",
        "master_metadata_track_name": name if name is not None else f"Song {n}",
        "master_metadata_album_artist_name": artist if artist is not None else f"Artist {n % 5}",
        "master_metadata_album_album_name": album if album is not None else f"Album {n % 7}",
        "spotify_track_uri": uri(n) if track_uri is True else (track_uri or None),
        "episode_name": None,
        "episode_show_name": None,
        "spotify_episode_uri": None,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "trackdone",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "offline_timestamp": None,
        "incognito_mode": incognito,
    }


def episode(when: datetime, n: int = 1, ms: int = 600_000) -> dict:
    entry = extended(when, n, ms)
    entry.update(
        master_metadata_track_name=None,
        master_metadata_album_artist_name=None,
        master_metadata_album_album_name=None,
        spotify_track_uri=None,
        episode_name=f"Episode {n}",
        episode_show_name="A Show",
        spotify_episode_uri=f"spotify:episode:ep{n:020d}",
    )
    return entry


def audiobook(when: datetime, ms: int = 600_000) -> dict:
    entry = extended(when, 1, ms, track_uri=None)
    entry.update(
        master_metadata_track_name=None,
        master_metadata_album_artist_name=None,
        master_metadata_album_album_name=None,
        audiobook_title="A Book",
        audiobook_uri="spotify:audiobook:book0000000000000000001",
        audiobook_chapter_uri="spotify:chapter:chap000000000000000001",
        audiobook_chapter_title="Chapter 1",
    )
    return entry


def account(when: datetime, n: int = 1, ms: int = 180_000, *, name=None, artist=None) -> dict:
    """One account-data entry (`StreamingHistory_music_*.json`)."""
    return {
        "endTime": end_time(when),
        "artistName": artist if artist is not None else f"Artist {n % 5}",
        "trackName": name if name is not None else f"Song {n}",
        "msPlayed": ms,
    }


def podcast(when: datetime, ms: int = 600_000) -> dict:
    return {"endTime": end_time(when), "podcastName": "A Show", "episodeName": "Ep", "msPlayed": ms}


def dumps(entries: list) -> str:
    """Spotify writes indented JSON; so do we."""
    return json.dumps(entries, indent=2, ensure_ascii=False)


def write(path: Path, entries: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(entries), encoding="utf-8")
    return path


def write_zip(path: Path, files: dict[str, list | str]) -> Path:
    """A zip laid out like Spotify's (`Spotify Extended Streaming History/...`)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, entries in files.items():
            archive.writestr(name, entries if isinstance(entries, str) else dumps(entries))
    return path
