"""Placeholder URIs: the catalogue rows an export names but does not identify.

The export names artists and albums without identifying them, and account data names
tracks only, so the import stores them under placeholder URIs built from the names
(docs/import.md, "Tracks, albums and artists"); `sync run` later gives a placeholder its
real identity. This is the rule's one home in Python: the parser builds refs with
placeholder(); SQL's copy is catalogue_placeholder (sql/repeatable/20_catalogue.sql),
which tests/history_import/test_same_song.py holds to the same table of cases.

Imports before podcasts were kept apart stored episodes as tracks too, under the
episode prefix below: nothing makes those any more (episodes are spoken plays,
sync/store/spoken.py), and they stay as stored (docs/import.md, "Podcasts and
audiobooks"), so the prefix stays for what reads them (the export).
"""

from __future__ import annotations

PLACEHOLDER_TRACK = "spotify:export:"  # + artist + ":" + track
PLACEHOLDER_ARTIST = "spotify:export-artist:"  # + artist name
PLACEHOLDER_ALBUM = "spotify:export-album:"  # + artist + ":" + album
# Stored by old imports only (with the show as album, spotify:export-show:<show>): an
# episode's track, which the export writes as an episode.
PLACEHOLDER_EPISODE = "spotify:export-episode:"  # + show + ":" + episode
NAME_IN_URI_MAX = 300  # characters of a name kept in a placeholder URI (btree entries are bounded)

# kind -> (prefix, whether the URI names an artist before the name)
_KINDS = {
    "track": (PLACEHOLDER_TRACK, True),
    "artist": (PLACEHOLDER_ARTIST, False),
    "album": (PLACEHOLDER_ALBUM, True),
}


def cut(value: object) -> str:
    """A name as part of a placeholder URI: bounded, so the URI fits the unique index."""
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    return text[:NAME_IN_URI_MAX]


def placeholder(kind: str, artist: object, name: object) -> str:
    """The placeholder URI of a track, artist or album."""
    prefix, with_artist = _KINDS[kind]
    if with_artist:
        return f"{prefix}{cut(artist)}:{cut(name)}"
    return f"{prefix}{cut(name)}"
