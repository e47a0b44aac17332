"""Pure parsing of Spotify's personal data export: file names in, staging rows out. No I/O.

Two formats (see docs/import.md for every rule):
- extended streaming history: `Streaming_History_Audio_*.json` (formerly `endsong_*.json`),
  one object per stream with `ts` (end of the stream, UTC, second precision), `ms_played`,
  names and `spotify_track_uri`; podcast, audiobook and video rows live in the same shape.
- account data: `StreamingHistory_music_*.json` (formerly `StreamingHistory<n>.json`), objects
  `{endTime: "YYYY-MM-DD HH:MM", artistName, trackName, msPlayed}`, minute precision, no URI.

`parse_file` turns one file into its plays (end time, ms played, which track) with
duplicates inside the file removed, the distinct tracks it names, and counts of what it
skipped and why. It is written for speed (about a million entries go through it per
import) and runs in worker processes, so it only takes and returns plain data. Problems
with the input raise `ExportFormatError` naming the entry that broke it.

Over 400 lines on purpose: both formats' loops share _Rows and the skip rules, and the
hot loop is kept in one place for speed; splitting it would scatter one set of rules.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sync.store.sources import SOURCE_ACCOUNT, SOURCE_EXTENDED

# Plays shorter than this are not plays: the Web API does not report them either.
DEFAULT_MIN_MS = 30_000

# Kinds of staged rows (the `kind` column of the staging table).
KIND_TRACK = 0  # has a spotify:track: (or other) URI
KIND_NAMED_TRACK = 1  # only names: account data, or an extended row without URI
KIND_EPISODE = 2  # podcast episode with a spotify:episode: URI (only with include_podcasts)
KIND_NAMED_EPISODE = 3  # account-data podcast row: show and episode names only

# Placeholder URIs for things the export names but does not identify.
PLACEHOLDER_TRACK = "spotify:export:"  # + artist + ":" + track
PLACEHOLDER_EPISODE = "spotify:export-episode:"  # + show + ":" + episode
PLACEHOLDER_ARTIST = "spotify:export-artist:"  # + artist name
PLACEHOLDER_ALBUM = "spotify:export-album:"  # + artist + ":" + album
PLACEHOLDER_SHOW = "spotify:export-show:"  # + show name (stored as the episode's album)
NAME_IN_URI_MAX = 300  # characters of a name kept in a placeholder URI (btree entries are bounded)

# File kinds
EXTENDED = "extended"
EXTENDED_VIDEO = "extended-video"
ACCOUNT = "account"
ACCOUNT_PODCAST = "account-podcast"

SOURCE_OF_KIND = {
    EXTENDED: SOURCE_EXTENDED,
    EXTENDED_VIDEO: SOURCE_EXTENDED,
    ACCOUNT: SOURCE_ACCOUNT,
    ACCOUNT_PODCAST: SOURCE_ACCOUNT,
}

# Skip reasons, in the order they are tested: an entry counts under the first that fits.
SKIP_PODCAST = "podcast"
SKIP_AUDIOBOOK = "audiobook"
SKIP_VIDEO = "video"
SKIP_NO_TRACK = "no_track"
SKIP_EXCLUDED = "excluded_show"  # --exclude-show: a show in an old account-data file
SKIP_INCOGNITO = "incognito"
SKIP_SHORT = "short"
SKIP_DUPLICATE = "duplicate"  # the same play twice in the export
SKIP_NO_SLOT = "no_time_slot"  # no free millisecond left (see "Time collisions", docs)
SKIP_REASONS = (
    SKIP_PODCAST, SKIP_AUDIOBOOK, SKIP_VIDEO, SKIP_NO_TRACK, SKIP_EXCLUDED, SKIP_INCOGNITO,
    SKIP_SHORT,
    SKIP_DUPLICATE, SKIP_NO_SLOT,
)  # fmt: skip

# Old account-data files (`StreamingHistory<n>.json`, before 2023) hold podcast episodes
# as if they were songs (the show in artistName), with nothing to tell them apart; plays
# longer than this are counted as "look like episodes" in the import's report.
EPISODE_LIKE_MS = 20 * 60_000
_MIXED_ACCOUNT = re.compile(r"^streaminghistory\d+\.json$")

_FILE_PATTERNS = (
    (re.compile(r"^streaming_history_audio_.*\.json$"), EXTENDED),
    (re.compile(r"^endsong(_\d+)?\.json$"), EXTENDED),
    (re.compile(r"^streaming_history_video_.*\.json$"), EXTENDED_VIDEO),
    (re.compile(r"^endvideo(_\d+)?\.json$"), EXTENDED_VIDEO),
    (re.compile(r"^streaminghistory_music_\d+\.json$"), ACCOUNT),
    (re.compile(r"^streaminghistory_podcast_\d+\.json$"), ACCOUNT_PODCAST),
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


@dataclass(frozen=True)
class ParseOptions:
    min_ms: int = DEFAULT_MIN_MS
    include_podcasts: bool = False
    include_video: bool = False
    exclude_shows: frozenset[str] = frozenset()  # lower-cased artistName values to skip


@dataclass
class ParsedFile:
    """One export file reduced to plays, the tracks they name, and counts.

    Plays are parallel lists (cheap to pickle between processes). `ref_idx` points into
    `refs`: (ref, kind, track name, artist name, album name), ref being the track's URI or
    a placeholder URI built from its names. `offset_ms` separates distinct plays that share
    an end time (see "Time collisions" in docs/import.md); `at_text` is ts + offset as text
    Postgres reads in UTC.
    """

    name: str
    kind: str
    source: int
    entries: int = 0  # entries read
    skipped: Counter = field(default_factory=Counter)
    episode_like: int = 0  # old account data only: plays over EPISODE_LIKE_MS
    refs: list[tuple] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)  # stated end time, ms since the epoch
    offset_ms: list[int] = field(default_factory=list)
    at_text: list[str] = field(default_factory=list)
    ms: list[int] = field(default_factory=list)  # ms_played
    ref_idx: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.ms)


class ExportFormatError(ValueError):
    """A file that is not what its name says: message names the entry (1-based) that broke it."""

    def __init__(self, name: str, problem: str, entry: int | None = None):
        self.name = name
        self.entry = entry
        self.problem = problem
        where = f"entry {entry}: " if entry is not None else ""
        super().__init__(f"{name}: {where}{problem}")

    def __reduce__(self):  # raised in worker processes: must survive pickling
        return (ExportFormatError, (self.name, self.problem, self.entry))


# -- JSON ---------------------------------------------------------------------------------
def load_entries(name: str, data: bytes) -> list:
    """Decode a file's JSON array; on a syntax error, name the entry where it broke."""
    try:
        entries = json.loads(data)
    except UnicodeDecodeError:
        raise ExportFormatError(
            name, "is not UTF-8 text (is it really a Spotify export file?)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ExportFormatError(name, *_locate_syntax_error(data, exc)) from None
    if not isinstance(entries, list):
        raise ExportFormatError(name, "is not a JSON array of plays")
    return entries


def _truncated(text: str) -> str:
    return (
        f"the file ends (line {text.rstrip().count(chr(10)) + 1}) before its data does, so it "
        "looks truncated or corrupt: download the export again (or extract it again from the .zip)"
    )


def _at(msg: str, line: int, col: int) -> str:
    """json's message and where; its messages ending in 'at' ('Unterminated string starting
    at') take the place directly, so it never reads 'at at'."""
    return f"{msg}{' ' if msg.endswith(' at') else ' at '}line {line} column {col}"


def _locate_syntax_error(data: bytes, exc: json.JSONDecodeError) -> tuple[str, int | None]:
    """(problem, 1-based entry) for a JSON syntax error: walk the array one element at a time.

    A file that stops before its array is closed (an interrupted download or extraction)
    says so, rather than what json expected where it was cut.
    """
    text = data.decode("utf-8-sig", errors="replace")
    end = len(text.rstrip())
    outer = _at(exc.msg, exc.lineno, exc.colno)
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()
    if not text.startswith("[", pos):
        return f"is not valid JSON ({outer})", None
    pos = ws.match(text, pos + 1).end()
    index = 0
    if text.startswith("]", pos):
        return f"is not valid JSON ({outer})", None
    while True:
        index += 1
        if pos >= end:  # cut after an entry and its comma
            return _truncated(text), index
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as inner:
            if inner.pos >= end or inner.msg.startswith("Unterminated string"):  # runs to EOF
                return _truncated(text), index
            return f"is not valid JSON ({_at(inner.msg, inner.lineno, inner.colno)})", index
        pos = ws.match(text, pos).end()
        if text.startswith(",", pos):
            pos = ws.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):  # the array parsed: the problem is after it
            return f"is not valid JSON ({outer}, after the last entry)", None
        if pos >= end:  # cut right after an entry
            return _truncated(text), index
        return (
            f"is not valid JSON (expected ',' or ']' at line {exc.lineno} column {exc.colno})",
            index + 1,
        )


# -- values -------------------------------------------------------------------------------
def _cut(value: object) -> str:
    """A name as part of a placeholder URI: bounded, so the URI fits the unique index."""
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    return text[:NAME_IN_URI_MAX]


def _name(value: object) -> str | None:
    if value is None or type(value) is str:
        return value or None
    return str(value)


def _ms(value: object, name: str, index: int, key: str) -> int:
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value >= 0 and value.is_integer():
        return int(value)
    if value is None:
        raise ExportFormatError(name, f"'{key}' is missing", index + 1)
    raise ExportFormatError(name, f"'{key}' is {value!r}, not a number of milliseconds", index + 1)


def _bad_time(name: str, index: int, key: str, value: object, example: str) -> ExportFormatError:
    if value is None:
        return ExportFormatError(name, f"'{key}' is missing", index + 1)
    return ExportFormatError(name, f"'{key}' is {value!r}, not a time like {example!r}", index + 1)


def parse_time(value: object) -> datetime:
    """An export time (extended `ts` or account `endTime`) as an aware UTC datetime.

    Times without a zone are UTC (Spotify writes them in UTC).
    """
    if type(value) is not str or len(value) < 10:
        raise ValueError("not a time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def ms_text(at_ms: int) -> str:
    """Milliseconds since the epoch as UTC text Postgres reads exactly."""
    moment = datetime.fromtimestamp(at_ms // 1000, UTC).replace(microsecond=at_ms % 1000 * 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at_ms % 1000:03d}Z"


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
    if re.search(rb'"endTime"\s*:', head):
        return ACCOUNT
    return None


def parse_file(name: str, data: bytes, kind: str, options: ParseOptions) -> ParsedFile:
    """Validate and reduce one export file. Raises ExportFormatError."""
    parsed = ParsedFile(name=name, kind=kind, source=SOURCE_OF_KIND[kind])
    entries = load_entries(name, data)
    parsed.entries = len(entries)
    if kind == EXTENDED_VIDEO and not options.include_video:
        _video_skips(name, entries, options, parsed)
    elif kind == ACCOUNT_PODCAST and not options.include_podcasts:
        _count_only(name, entries, parsed, SKIP_PODCAST)
    elif kind in (EXTENDED, EXTENDED_VIDEO):
        _extended(name, entries, options, parsed)
    else:
        _account(name, entries, options, parsed, kind == ACCOUNT_PODCAST)
        if not _MIXED_ACCOUNT.match(re.split(r"[/\\:]", name)[-1].lower()):
            parsed.episode_like = 0  # newer files keep episodes apart: nothing to warn about
    return parsed


def _count_only(name: str, entries: list, parsed: ParsedFile, reason: str) -> None:
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
    parsed.skipped[reason] += len(entries)


def _is_episode(e: dict) -> bool:
    return bool(e.get("spotify_episode_uri") or e.get("episode_name"))


def _is_audiobook(e: dict) -> bool:
    return bool(
        e.get("audiobook_uri") or e.get("audiobook_chapter_uri") or e.get("audiobook_title")
    )


def _video_skips(name: str, entries: list, options: ParseOptions, parsed: ParsedFile) -> None:
    """A video file without --include-video: each row counts under the first reason that
    applies (SKIP_REASONS' order), so its episodes count as podcast, the rest as video."""
    skipped = parsed.skipped
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        if not options.include_podcasts and _is_episode(e):
            skipped[SKIP_PODCAST] += 1
        elif _is_audiobook(e):
            skipped[SKIP_AUDIOBOOK] += 1
        else:
            skipped[SKIP_VIDEO] += 1


class _Rows:
    """Collects a file's plays: one row per distinct play, offsets for shared end times.

    Written for the common case (every end time distinct): a second play at the same time
    is either the same play again (dropped, the longer ms_played kept) or another play,
    which gets the next free millisecond.
    """

    def __init__(self, parsed: ParsedFile, same_if_ms_differs: bool):
        self.p = parsed
        self.by_ref: dict[str, int] = {}
        self.at: dict[int, object] = {}  # end time -> first row, or {play key: row}
        self.same_if_ms_differs = same_if_ms_differs

    def ref(self, ref: str, kind: int, track, artist, album) -> int:
        ri = self.by_ref[ref] = len(self.p.refs)
        self.p.refs.append((ref, kind, _name(track), _name(artist), _name(album)))
        return ri

    def shared(self, at: int, text: str, ms: int, ri: int, first: object) -> None:
        """A second (third...) play ending at the same time as an earlier one."""
        p = self.p
        if type(first) is int:
            first = self.at[at] = {self._key(p.ref_idx[first], p.ms[first]): first}
        key = self._key(ri, ms)
        row = first.get(key)
        if row is not None:  # the same play twice: keep the longer listening time
            p.skipped[SKIP_DUPLICATE] += 1
            if ms > p.ms[row]:
                p.ms[row] = ms
            return
        offset = len(first)
        first[key] = len(p.ms)
        self.append(at, offset, ms_text(at + offset), ms, ri)

    def _key(self, ri: int, ms: int) -> object:
        return ri if self.same_if_ms_differs else (ri, ms)

    def append(self, at: int, offset: int, text: str, ms: int, ri: int) -> None:
        p = self.p
        p.ts_ms.append(at)
        p.offset_ms.append(offset)
        p.at_text.append(text)
        p.ms.append(ms)
        p.ref_idx.append(ri)


def _extended(name: str, entries: list, options: ParseOptions, parsed: ParsedFile) -> None:
    """Extended streaming history rows. Hot loop (a million entries an import): keep it lean."""
    rows = _Rows(parsed, same_if_ms_differs=True)
    by_ref = rows.by_ref
    seen_at = rows.at
    skipped = parsed.skipped
    min_ms = options.min_ms
    podcasts = options.include_podcasts
    fromiso = datetime.fromisoformat
    ts_ms, offsets, texts, mss, refs = (parsed.ts_ms, parsed.offset_ms, parsed.at_text,
                                        parsed.ms, parsed.ref_idx)  # fmt: skip
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        ts = e.get("ts")
        try:
            moment = fromiso(ts)
        except (TypeError, ValueError):
            raise _bad_time(name, index, "ts", ts, "2024-05-06T18:43:21Z") from None
        ms = e.get("ms_played")
        if type(ms) is not int or ms < 0:
            ms = _ms(ms, name, index, "ms_played")
        uri = e.get("spotify_track_uri")
        if uri:
            kind = KIND_TRACK
        elif _is_episode(e):
            if not podcasts:
                skipped[SKIP_PODCAST] += 1
                continue
            kind = KIND_EPISODE
        elif _is_audiobook(e):
            skipped[SKIP_AUDIOBOOK] += 1
            continue
        elif e.get("master_metadata_track_name"):
            kind = KIND_NAMED_TRACK  # no URI but names (local files, withdrawn tracks)
        else:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if e.get("incognito_mode") is True:
            skipped[SKIP_INCOGNITO] += 1
            continue
        if ms < min_ms:
            skipped[SKIP_SHORT] += 1
            continue
        if kind != KIND_TRACK:
            uri, kind, track, artist, album = _other_extended(e, kind)
        ri = by_ref.get(uri)
        if ri is None:
            if kind == KIND_TRACK:
                uri = str(uri)
                track = e.get("master_metadata_track_name")
                artist = e.get("master_metadata_album_artist_name")
                album = e.get("master_metadata_album_album_name")
            ri = rows.ref(uri, kind, track, artist, album)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        at = round(moment.timestamp() * 1000)
        first = seen_at.get(at)
        if first is not None:
            rows.shared(at, ts, ms, ri, first)
            continue
        seen_at[at] = len(mss)
        ts_ms.append(at)
        offsets.append(0)
        texts.append(ts if len(ts) == 20 and ts[19] == "Z" else ms_text(at))
        mss.append(ms)
        refs.append(ri)


def _other_extended(e: dict, kind: int) -> tuple:
    """(ref, kind, track, artist, album) of an episode or a URI-less track row."""
    if kind == KIND_EPISODE:
        uri = e.get("spotify_episode_uri")
        track = e.get("episode_name") or uri
        album = e.get("episode_show_name")
        if uri:
            return str(uri), KIND_EPISODE, track, None, album
        return (
            f"{PLACEHOLDER_EPISODE}{_cut(album)}:{_cut(track)}",
            KIND_NAMED_EPISODE,
            track,
            None,
            album,
        )
    track = e.get("master_metadata_track_name")
    artist = e.get("master_metadata_album_artist_name")
    album = e.get("master_metadata_album_album_name")
    return (
        f"{PLACEHOLDER_TRACK}{_cut(artist)}:{_cut(track)}",
        KIND_NAMED_TRACK,
        track,
        artist,
        album,
    )


def _account(
    name: str, entries: list, options: ParseOptions, parsed: ParsedFile, podcast_file: bool
) -> None:
    """Account-data rows (`StreamingHistory_music_*`, and podcasts when asked for)."""
    rows = _Rows(parsed, same_if_ms_differs=False)  # minute precision: ms tells plays apart
    skipped = parsed.skipped
    min_ms = options.min_ms
    podcasts = options.include_podcasts
    for index, e in enumerate(entries):
        if type(e) is not dict:
            raise ExportFormatError(name, "is not a JSON object", index + 1)
        end = e.get("endTime")
        try:
            at = round(parse_time(end).timestamp() * 1000)
        except (TypeError, ValueError):
            raise _bad_time(name, index, "endTime", end, "2024-05-06 18:43") from None
        ms = e.get("msPlayed")
        if type(ms) is not int or ms < 0:
            ms = _ms(ms, name, index, "msPlayed")
        if podcast_file or "episodeName" in e or "podcastName" in e:
            if not podcasts:
                skipped[SKIP_PODCAST] += 1
                continue
            track = e.get("episodeName")
            album = e.get("podcastName")
            artist = None
            kind = KIND_NAMED_EPISODE
            ref = f"{PLACEHOLDER_EPISODE}{_cut(album)}:{_cut(track)}"
        else:
            track = e.get("trackName")
            artist = e.get("artistName")
            album = None
            kind = KIND_NAMED_TRACK
            ref = f"{PLACEHOLDER_TRACK}{_cut(artist)}:{_cut(track)}"
        if not track:
            skipped[SKIP_NO_TRACK] += 1
            continue
        if kind == KIND_NAMED_TRACK and _looks_excluded(artist, ms, options, parsed):
            continue
        if ms < min_ms:
            skipped[SKIP_SHORT] += 1
            continue
        ri = rows.by_ref.get(ref)
        if ri is None:
            ri = rows.ref(ref, kind, track, artist, album)
        text = end if len(end) == 16 and end[10] == " " else ms_text(at)
        first = rows.at.get(at)
        if first is not None:
            rows.shared(at, text, ms, ri, first)
            continue
        rows.at[at] = len(parsed.ms)
        rows.append(at, 0, text, ms, ri)


def _looks_excluded(artist: object, ms: int, options: ParseOptions, parsed: ParsedFile) -> bool:
    """--exclude-show for an account-data row (counted as skipped); else count episode-likes."""
    if options.exclude_shows and type(artist) is str and artist.lower() in options.exclude_shows:
        parsed.skipped[SKIP_EXCLUDED] += 1
        return True
    if ms > EPISODE_LIKE_MS:
        parsed.episode_like += 1
    return False
