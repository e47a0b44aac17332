"""Spotify's extended streaming history format, written from the history: one JSON file per
year (`Streaming_History_Audio_YYYY.json`; a year of over PART_ENTRIES plays in parts,
`Streaming_History_Audio_YYYY_0.json`, `_1`, ...) in a zip laid out like Spotify's.

Entries carry every field of Spotify's own, in its order (tests/support/export_fakes.py);
what the history does not know is null. Spotify's `ts` has whole seconds, and importers
(this project's among them) take two plays of one song ending in the same second for one
play repeated; such a play is written one second later (counted as `moved`).
docs/export.md explains each rule.
"""

from __future__ import annotations

import bisect
import heapq
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # C-accelerated
from time import gmtime, strftime
from typing import IO, BinaryIO

from sync.store.catalogue import PLACEHOLDER_EPISODE, PLACEHOLDER_TRACK
from sync.store.sources import song_key

FOLDER = "Spotify Extended Streaming History/"
SHORT_MS = 30_000  # importers skip shorter plays by default (so does ours: --min-seconds 30)
CHUNK = 2_000  # entries joined per write into the zip member
# Most entries in one file. Importers read a file whole (ours: about 3 KB of memory an
# entry while parsing), and Spotify's own files hold about 15,000; 50,000 keeps a year in
# one file for all but the heaviest listeners (137 plays a day) and a file under ~30 MB.
PART_ENTRIES = 50_000
# Placeholders for what an import could not identify (sync/store/catalogue.py): the
# export writes their names and no URI, as Spotify does for such plays.
_NAMES_ONLY_TRACK = PLACEHOLDER_TRACK
_EPISODE = "spotify:episode:"
_NAMES_ONLY_EPISODE = PLACEHOLDER_EPISODE


def member_name(year: str, part: int | None = None) -> str:
    """Spotify's name for a year of audio history (it splits by size and names the years a
    file spans; we split by year, and by size only a year too large for one file)."""
    suffix = "" if part is None else f"_{part}"
    return f"{FOLDER}Streaming_History_Audio_{year}{suffix}.json"


@dataclass
class SpotifyStats:
    plays: int = 0
    estimated: int = 0  # Web API plays: ms_played is the analytics' estimate
    moved: int = 0  # written a second (or more) later: another play of the song ends then
    short: int = 0  # ms_played under 30 s (estimated ones included)
    short_estimated: int = 0
    episodes: int = 0
    chapters: int = 0
    files: Counter = field(default_factory=Counter)  # member name -> entries


class _Seconds:
    """Keeps two plays of one song out of one whole second, moving the later one on.

    Rows arrive in end-time order, so only seconds from the current one on matter; the
    common case (a new second) costs one comparison and computes no song key.
    """

    def __init__(self) -> None:
        self.high = -(2**62)  # the latest second used so far
        self.last: tuple = (0, None, None)  # (second, name, who) of the first play there
        self.taken: dict[int, set[str]] | None = None  # second -> song keys, when needed

    def place(self, sec: int, name: str | None, who: str | None) -> int:
        """The second to write for a play ending in `sec` (sec <= self.high)."""
        taken = self.taken
        if taken is None:
            first_sec, first_name, first_who = self.last
            taken = self.taken = {first_sec: {song_key(first_name, first_who)}}
        for old in [s for s in taken if s < sec]:
            del taken[old]
        key = song_key(name, who)
        at = sec
        while key in taken.get(at, ()):
            at += 1
        taken.setdefault(at, set()).add(key)
        self.high = max(self.high, at)
        return at


def _ts(sec: int) -> str:
    return strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(sec))


_HEAD = '{{"ts": "{}", "platform": null, "ms_played": {}, "conn_country": null, "ip_addr": null, '
_NO_BOOK = (
    '"audiobook_title": null, "audiobook_uri": null, "audiobook_chapter_uri": null, '
    '"audiobook_chapter_title": null, '
)
_TRACK = (
    '"master_metadata_track_name": {}, "master_metadata_album_artist_name": {}, '
    '"master_metadata_album_album_name": {}, "spotify_track_uri": {}, '
    '"episode_name": null, "episode_show_name": null, "spotify_episode_uri": null, '
) + _NO_BOOK
_NO_TRACK = (
    '"master_metadata_track_name": null, "master_metadata_album_artist_name": null, '
    '"master_metadata_album_album_name": null, "spotify_track_uri": null, '
)
_EPISODE_FIELDS = (
    _NO_TRACK + '"episode_name": {}, "episode_show_name": {}, "spotify_episode_uri": {}, '
) + _NO_BOOK
_CHAPTER_FIELDS = _NO_TRACK + (
    '"episode_name": null, "episode_show_name": null, "spotify_episode_uri": null, '
    '"audiobook_title": {}, "audiobook_uri": null, "audiobook_chapter_uri": {}, '
    '"audiobook_chapter_title": {}, '
)
_TAIL = (
    '"reason_start": null, "reason_end": null, '
    '"shuffle": null, "skipped": null, "offline": null, "offline_timestamp": null, '
    '"incognito_mode": false}'
)
MUSIC, EPISODE, CHAPTER = 0, 1, 2  # what an entry is (a body's last field)


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def bodies(tracks: Iterable[tuple]) -> dict[int, tuple[str, str | None, str | None, int]]:
    """Track id -> (the entry's track or episode fields as JSON, name, artist or show, episode)
    from query.spotify_tracks' rows.

    Built once per track, so each play costs a lookup and a join of three strings.
    """
    out = {}
    for track_id, name, artist, album, uri in tracks:
        if uri.startswith((_EPISODE, _NAMES_ONLY_EPISODE)):
            link = _text(uri) if uri.startswith(_EPISODE) else "null"
            body = _EPISODE_FIELDS.format(_text(name), _text(album), link)
            out[track_id] = (body, name, album, EPISODE)
        else:
            link = "null" if uri.startswith(_NAMES_ONLY_TRACK) else _text(uri)
            body = _TRACK.format(_text(name), _text(artist), _text(album), link)
            out[track_id] = (body, name, artist, MUSIC)
    return out


def spoken_bodies(items: Iterable[tuple]) -> dict[int, tuple[str, str | None, str | None, int]]:
    """-item id -> the entry's fields, as bodies() gives them, from query.spoken's items: an
    episode's name, show and URI; a chapter's book, chapter URI and title."""
    out = {}
    for item_id, kind, uri, show, name in items:
        if kind == CHAPTER:
            body = _CHAPTER_FIELDS.format(_text(show), _text(uri), _text(name))
        else:
            body = _EPISODE_FIELDS.format(_text(name), _text(show), _text(uri))
        out[-item_id] = (body, name, show, kind)
    return out


def interleave(batches: Iterable[list[tuple]], spoken: list[tuple]) -> Iterator[list[tuple]]:
    """The music batches with the spoken plays (few, in end-time order) merged in by end
    time; a batch no spoken play falls into passes through untouched."""
    rest = spoken
    for batch in batches:
        upto = bisect.bisect_right(rest, batch[-1][1], key=lambda row: row[1]) if rest else 0
        if upto:
            batch = list(heapq.merge(batch, rest[:upto], key=lambda row: row[1]))
            rest = rest[upto:]
        yield batch
    if rest:
        yield rest


class _Files:
    """The zip's yearly members (or parts of a year), each written a chunk at a time."""

    def __init__(self, archive: zipfile.ZipFile, years: Mapping[str, int], part_entries: int):
        self.archive = archive
        self.years = years  # plays a year (query.year_counts): which years come in parts
        self.part_entries = part_entries
        self.member: IO[bytes] | None = None
        self.year: str | None = None
        self.part = 0
        self.left = 0  # entries the current file may still take
        self.current = ""
        self.out: list[str] = []

    def start(self, year: str) -> list[str]:
        """The next file: a new year, or the next part of a large one; returns its chunk."""
        self.close()
        split = self.years.get(year, 0) > self.part_entries
        self.part = self.part + 1 if year == self.year else 0
        self.year = year
        self.current = member_name(year, self.part if split else None)
        self.left = self.part_entries if split else 2**62
        self.member = self.archive.open(self.current, "w", force_zip64=True)
        self.out = ["[\n"]
        return self.out

    def flush(self) -> list[str]:
        """Write the chunk; returns the next one (starting with the separator)."""
        assert self.member is not None
        self.member.write("".join(self.out).encode())
        self.out = [",\n"]
        return self.out

    def close(self) -> None:
        if self.member is not None:
            self.out.append("\n]\n")
            self.member.write("".join(self.out).encode())
            self.member.close()
            self.member = None


def write_zip(
    fh: BinaryIO,
    tracks: Mapping[int, tuple[str, str | None, str | None, int]],
    batches: Iterable[list[tuple]],
    years: Mapping[str, int],
    *,
    compresslevel: int = 1,
    part_entries: int | None = None,
) -> SpotifyStats:
    """Write the plays (query.spotify_plays, in end-time order) of the tracks (bodies())
    as Spotify's zip into `fh`.

    `years` (plays a UTC year, counted first) says which years need parts. Each file is a zip
    member written as the rows arrive: nothing is held but the entries of one chunk.
    Deflate level 1: on this JSON about 15 % larger than level 6 and twice as quick.
    """
    stats = SpotifyStats()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        files = _Files(archive, years, part_entries or PART_ENTRIES)
        seconds = _Seconds()
        for batch in batches:
            _entries(files, seconds, tracks, batch, stats)
        files.close()
    return stats


def _entries(
    files: _Files, seconds: _Seconds, tracks: Mapping, batch: list[tuple], stats: SpotifyStats
) -> None:
    """One batch of plays into the current chunk. Hot loop (a million plays): keep it lean."""
    counts = stats.files
    head, tail = _HEAD, _TAIL
    out = files.out
    for sec, ts, track_id, ms, estimated in batch:
        if ts[:4] != files.year or not files.left:  # a new year (or part): a new file
            out = files.start(ts[:4])
        elif len(out) >= CHUNK:
            out = files.flush()
        else:
            out.append(",\n")
        counts[files.current] += 1
        files.left -= 1
        body, name, who, kind = tracks[track_id]
        if sec > seconds.high:  # the common case: a second no play used yet
            seconds.high = sec
            seconds.last = (sec, name, who)
            seconds.taken = None
        else:
            at = seconds.place(sec, name, who)
            if at != sec:
                stats.moved += 1
                ts = _ts(at)
        out.append(head.format(ts, ms))
        out.append(body)
        out.append(tail)
        if kind:
            if kind == EPISODE:
                stats.episodes += 1
            else:
                stats.chapters += 1
        if estimated:
            stats.estimated += 1
        if ms < SHORT_MS:
            stats.short += 1
            stats.short_estimated += estimated
    stats.plays += len(batch)
