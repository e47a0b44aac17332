"""Pure functions from Spotify API items to rows. No I/O here."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sync.store.rows import AlbumRow, ArtistRow, Play, TrackRow


class SkipItem(ValueError):
    """An item that cannot be stored (no track, unreadable time); counted, not fatal."""


def parse_played_at(value: object) -> datetime:
    """Parse Spotify's ISO-8601 UTC time, with or without fractional seconds, to ms precision."""
    if not isinstance(value, str) or not value:
        raise SkipItem("played_at missing")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SkipItem("played_at unreadable") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _artist(raw: object) -> ArtistRow | None:
    if not isinstance(raw, dict):
        return None
    name = _str(raw.get("name"))
    spotify_id = _str(raw.get("id"))
    uri = _str(raw.get("uri")) or (f"spotify:artist:{spotify_id}" if spotify_id else None)
    if uri is None:
        if not name:
            return None
        uri = f"spotify:local-artist:{name}"
    return ArtistRow(uri=uri, spotify_id=spotify_id, name=name or "")


def _album(raw: object, track_artists: tuple[ArtistRow, ...]) -> AlbumRow | None:
    if not isinstance(raw, dict):
        return None
    name = _str(raw.get("name"))
    spotify_id = _str(raw.get("id"))
    uri = _str(raw.get("uri")) or (f"spotify:album:{spotify_id}" if spotify_id else None)
    if uri is None:
        if not name:
            return None
        first_artist = track_artists[0].name if track_artists else ""
        uri = f"spotify:local-album:{first_artist}:{name}"
    images = raw.get("images")
    image_url = None
    if isinstance(images, list) and images and isinstance(images[0], dict):
        image_url = _str(images[0].get("url"))
    return AlbumRow(
        uri=uri,
        spotify_id=spotify_id,
        name=name or "",
        album_type=_str(raw.get("album_type")),
        release_date=_str(raw.get("release_date")),
        image_url=image_url,
    )


def item_to_play(item: object) -> Play:
    """One recently-played item to a Play; raises SkipItem for items that cannot be stored."""
    if not isinstance(item, dict):
        raise SkipItem("item is not an object")
    track = item.get("track")
    if not isinstance(track, dict):
        raise SkipItem("item has no track")
    if track.get("type") not in (None, "track"):
        raise SkipItem("item is not a track")
    played_at = parse_played_at(item.get("played_at"))
    is_local = bool(track.get("is_local"))
    spotify_id = _str(track.get("id"))
    uri = _str(track.get("uri")) or (f"spotify:track:{spotify_id}" if spotify_id else None)
    if uri is None:
        raise SkipItem("track has neither uri nor id")
    artists = tuple(a for a in (_artist(r) for r in (track.get("artists") or [])) if a is not None)
    external = track.get("external_ids")
    isrc = _str(external.get("isrc")) if isinstance(external, dict) else None
    return Play(
        played_at=played_at,
        track=TrackRow(
            uri=uri,
            spotify_id=spotify_id,
            name=_str(track.get("name")) or "",
            duration_ms=_int(track.get("duration_ms")),
            explicit=track.get("explicit") if isinstance(track.get("explicit"), bool) else None,
            is_local=is_local,
            isrc=isrc,
            track_number=_int(track.get("track_number")),
            disc_number=_int(track.get("disc_number")),
            album=_album(track.get("album"), artists),
            artists=artists,
        ),
    )


def parse_items(items: list, stored: Collection[datetime] = ()) -> tuple[list[Play], int]:
    """Transform a page's items; return the plays and how many items were skipped.

    Items that end at a time in `stored` (the user's newest stored end times, from
    sync.store.users.claim) are stored already: neither transformed nor returned, so
    the write does not carry the whole window again every hour. A late play (offline
    listening) or one older than all of them is returned, and the write decides.
    """
    known = frozenset(stored)
    plays: list[Play] = []
    skipped = 0
    for item in items:
        try:
            if known and isinstance(item, dict) and parse_played_at(item.get("played_at")) in known:
                continue
            plays.append(item_to_play(item))
        except SkipItem:
            skipped += 1
    return plays, skipped
