"""The rows a play is stored as: a play, its track, the track's album and artists.

Plain data shared by the job (which builds them from API items, sync.job.transform)
and the store (which writes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ArtistRow:
    uri: str
    spotify_id: str | None
    name: str


@dataclass(frozen=True)
class AlbumRow:
    uri: str
    spotify_id: str | None
    name: str
    album_type: str | None
    release_date: str | None
    image_url: str | None


@dataclass(frozen=True)
class TrackRow:
    uri: str
    spotify_id: str | None
    name: str
    duration_ms: int | None
    explicit: bool | None
    is_local: bool
    isrc: str | None
    track_number: int | None
    disc_number: int | None
    album: AlbumRow | None
    artists: tuple[ArtistRow, ...]


@dataclass(frozen=True)
class Play:
    played_at: datetime
    track: TrackRow
