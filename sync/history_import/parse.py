"""Pure parsing of Spotify's personal data export: file names in, staging rows out. No I/O.

Two formats (see docs/import.md for every rule):
- extended streaming history: `Streaming_History_Audio_*.json` (formerly `endsong_*.json`),
  one object per stream with `ts` (end of the stream, UTC, second precision), `ms_played`,
  names and `spotify_track_uri`; podcast, audiobook and video rows live in the same shape.
- account data: `StreamingHistory_music_*.json` (formerly `StreamingHistory<n>.json`), objects
  `{endTime: "YYYY-MM-DD HH:MM", artistName, trackName, msPlayed}`, minute precision, no URI;
  `StreamingHistory_podcast_*.json` (`podcastName`, `episodeName`) and
  `StreamingHistory_audiobook_*.json` (`audiobookName`, `chapterName`) the same way.

Episodes and audiobook chapters become `ParsedFile.spoken` rows, kept apart from music.

`parse_file` turns one file into its plays (end time, ms played, which track) with
duplicates inside the file removed, the distinct tracks it names, and counts of what it
skipped and why. It is written for speed (about a million entries go through it per
import) and runs in worker processes, so it only takes and returns plain data. Problems
with the input raise `ExportFormatError` naming the entry that broke it.

The modules: staged.py (what a file becomes, shared rules), json_entries.py (the JSON
array and its errors), extended.py and account.py (one format each); this one finds the
format and dispatches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync.history_import.account import _account
from sync.history_import.extended import _extended
from sync.history_import.json_entries import load_entries
from sync.history_import.staged import (
    DEFAULT_MIN_MS,
    EPISODE_LIKE_MS,
    KIND_NAMED_TRACK,
    KIND_TRACK,
    SKIP_DUPLICATE,
    SKIP_EXCLUDED,
    SKIP_INCOGNITO,
    SKIP_NO_SLOT,
    SKIP_NO_TRACK,
    SKIP_REASONS,
    SKIP_SHORT,
    SKIP_VIDEO,
    SPOKEN_CHAPTER,
    SPOKEN_EPISODE,
    ExportFormatError,
    ParsedFile,
    ParseOptions,
    ms_text,
    parse_time,
)
from sync.store.sources import SOURCE_ACCOUNT, SOURCE_EXTENDED

# What the rest of the import (and its tests) take from here: the file-level names below
# and the shared ones of staged.py (placeholder URIs: sync/store/catalogue.py).
__all__ = [
    "ACCOUNT", "ACCOUNT_AUDIOBOOK", "ACCOUNT_PODCAST", "DEFAULT_MIN_MS", "EPISODE_LIKE_MS",
    "EXTENDED", "EXTENDED_VIDEO", "KIND_NAMED_TRACK", "KIND_TRACK",
    "SKIP_DUPLICATE", "SKIP_EXCLUDED", "SKIP_INCOGNITO", "SKIP_NO_SLOT", "SKIP_NO_TRACK",
    "SKIP_REASONS", "SKIP_SHORT", "SKIP_VIDEO", "SOURCE_OF_KIND",
    "SPOKEN_CHAPTER", "SPOKEN_EPISODE", "ExportFormatError", "ParsedFile", "ParseOptions",
    "SourceRef", "classify", "load_entries", "ms_text", "parse_file", "parse_time",
    "read_and_parse", "sniff",
]  # fmt: skip

# File kinds
EXTENDED = "extended"
EXTENDED_VIDEO = "extended-video"
ACCOUNT = "account"
ACCOUNT_PODCAST = "account-podcast"
ACCOUNT_AUDIOBOOK = "account-audiobook"

SOURCE_OF_KIND = {
    EXTENDED: SOURCE_EXTENDED,
    EXTENDED_VIDEO: SOURCE_EXTENDED,
    ACCOUNT: SOURCE_ACCOUNT,
    ACCOUNT_PODCAST: SOURCE_ACCOUNT,
    ACCOUNT_AUDIOBOOK: SOURCE_ACCOUNT,
}

_MIXED_ACCOUNT = re.compile(r"^streaminghistory\d+\.json$")

_FILE_PATTERNS = (
    (re.compile(r"^streaming_history_audio_.*\.json$"), EXTENDED),
    (re.compile(r"^endsong(_\d+)?\.json$"), EXTENDED),
    (re.compile(r"^streaming_history_video_.*\.json$"), EXTENDED_VIDEO),
    (re.compile(r"^endvideo(_\d+)?\.json$"), EXTENDED_VIDEO),
    (re.compile(r"^streaminghistory_music_\d+\.json$"), ACCOUNT),
    (re.compile(r"^streaminghistory_podcast_\d+\.json$"), ACCOUNT_PODCAST),
    (re.compile(r"^streaminghistory_audiobook_\d+\.json$"), ACCOUNT_AUDIOBOOK),
    (re.compile(r"^streaminghistory\d+\.json$"), ACCOUNT),
)


def classify(path: str) -> str | None:
    """The kind of export file at `path` (any folder, any case), or None if it holds no plays.

    macOS archive litter (`__MACOSX/`, `._name`) is never a history file.
    """
    parts = path.replace("\\", "/").split("/")
    if "__MACOSX" in parts[:-1] or parts[-1].startswith("._"):
        return None
    name = parts[-1].lower()
    for pattern, kind in _FILE_PATTERNS:
        if pattern.match(name):
            return kind
    return None


# -- files --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceRef:
    """Where one export file is: a path on disk, or a member of a .zip archive."""

    name: str  # shown to the user: the file name, or archive.zip:member
    path: str
    member: str | None = None
    kind: str = EXTENDED
    size: int = 0

    def read(self) -> bytes:
        if self.member is None:
            with open(self.path, "rb") as fh:
                return fh.read()
        import zipfile

        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def read_and_parse(source: SourceRef, options: ParseOptions) -> ParsedFile:
    """Read one file and parse it (the unit of work of the importer's worker processes)."""
    return parse_file(source.name, source.read(), source.kind, options)


def sniff(head: bytes) -> str | None:
    """The kind of a history file with an unexpected name, from its first bytes."""
    if re.search(rb'"ts"\s*:', head):
        return EXTENDED
    if re.search(rb'"(episodeName|podcastName)"\s*:', head):
        return ACCOUNT_PODCAST
    if re.search(rb'"(audiobookName|chapterName)"\s*:', head):
        return ACCOUNT_AUDIOBOOK
    if re.search(rb'"endTime"\s*:', head):
        return ACCOUNT
    return None


_SPOKEN_FILES = {ACCOUNT_PODCAST: SPOKEN_EPISODE, ACCOUNT_AUDIOBOOK: SPOKEN_CHAPTER}


def parse_file(name: str, data: bytes, kind: str, options: ParseOptions) -> ParsedFile:
    """Validate and reduce one export file. Raises ExportFormatError."""
    parsed = ParsedFile(name=name, kind=kind, source=SOURCE_OF_KIND[kind])
    entries = load_entries(name, data)
    parsed.entries = len(entries)
    if kind in (EXTENDED, EXTENDED_VIDEO):
        _extended(
            name, entries, options, parsed, kind == EXTENDED_VIDEO and not options.include_video
        )
    else:
        _account(name, entries, options, parsed, _SPOKEN_FILES.get(kind, 0))
        if not _MIXED_ACCOUNT.match(re.split(r"[/\\:]", name)[-1].lower()):
            parsed.episode_like = 0  # newer files keep episodes apart: nothing to warn about
    return parsed
