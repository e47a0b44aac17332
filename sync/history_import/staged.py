"""What parsing an export file produces, shared by both formats: the kinds of staged rows,
skip reasons, ParsedFile and ExportFormatError, the value rules, and _Rows (one row per
distinct play). Pure: no I/O. docs/import.md has every rule.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Plays shorter than this are not plays: the Web API does not report them either.
DEFAULT_MIN_MS = 30_000

# Kinds of staged rows (the `kind` column of the staging table, which
# catalogue_import_tracks in sql/repeatable/25_import.sql reads by these numbers;
# tests/history_import/test_same_song.py sends it every kind the parser makes).
KIND_TRACK = 0  # has a spotify:track: (or other) URI
KIND_NAMED_TRACK = 1  # only names: account data, or an extended row without URI

# Kinds of spoken items (spoken_items.kind, sql/009_spoken_plays.sql): episodes and
# chapters are stored apart from music (ParsedFile.spoken, sync/store/spoken.py).
SPOKEN_EPISODE = 1
SPOKEN_CHAPTER = 2

# Skip reasons, in the order they are tested: an entry counts under the first that fits.
SKIP_VIDEO = "video"
SKIP_NO_TRACK = "no_track"
SKIP_EXCLUDED = "excluded_show"  # --exclude-show: a show in an old account-data file
SKIP_INCOGNITO = "incognito"
SKIP_SHORT = "short"
SKIP_DUPLICATE = "duplicate"  # the same play twice in the export
SKIP_NO_SLOT = "no_time_slot"  # no free millisecond left (see "Time collisions", docs)
SKIP_REASONS = (
    SKIP_VIDEO, SKIP_NO_TRACK, SKIP_EXCLUDED, SKIP_INCOGNITO, SKIP_SHORT, SKIP_DUPLICATE,
    SKIP_NO_SLOT,
)  # fmt: skip

# Old account-data files (`StreamingHistory<n>.json`, before 2023) hold podcast episodes
# as if they were songs (the show in artistName), with nothing to tell them apart; plays
# longer than this are counted as "look like episodes" in the import's report.
EPISODE_LIKE_MS = 20 * 60_000


@dataclass(frozen=True)
class ParseOptions:
    min_ms: int = DEFAULT_MIN_MS
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
    # episode and chapter plays, apart from music: (kind, uri, show, name, at_text, ms)
    spoken: list[tuple] = field(default_factory=list)

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


# -- values -------------------------------------------------------------------------------
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


class _Spoken:
    """Collects a file's episode and chapter plays, one row per distinct play.

    An item is its URI, or its kind, show and name (lower-cased) when the row has none.
    The same rules as _Rows for music: in extended history the same item ending in the
    same second is one play (the longer ms_played kept); in account data (same_if_ms_differs
    False) only when ms_played is the same too, and another play of it in that minute gets
    the next millisecond, so re-importing the file finds the same rows.
    """

    def __init__(self, parsed: ParsedFile, same_if_ms_differs: bool):
        self.p = parsed
        self.seen: dict[tuple, int] = {}  # (item, end time[, ms]) -> row
        self.in_slot: Counter = Counter()  # (item, end time) -> distinct plays so far
        self.same_if_ms_differs = same_if_ms_differs

    def add(self, kind: int, uri: object, show: object, name: object, at: int, ms: int,
            min_ms: int, incognito: bool = False) -> None:  # fmt: skip
        """One entry, skipped under the reasons of music in their order, or a spoken row."""
        uri, show, name = _name(uri), _name(show), _name(name)
        p = self.p
        if not uri and not name:
            p.skipped[SKIP_NO_TRACK] += 1
            return
        if incognito:
            p.skipped[SKIP_INCOGNITO] += 1
            return
        if ms < min_ms:
            p.skipped[SKIP_SHORT] += 1
            return
        item = (kind, uri) if uri else (kind, (show or "").lower(), name.lower())
        key = (item, at) if self.same_if_ms_differs else (item, at, ms)
        row = self.seen.get(key)
        if row is not None:
            p.skipped[SKIP_DUPLICATE] += 1
            if ms > p.spoken[row][5]:
                p.spoken[row] = p.spoken[row][:5] + (ms,)
            return
        offset = self.in_slot[(item, at)]
        self.in_slot[(item, at)] += 1
        self.seen[key] = len(p.spoken)
        p.spoken.append((kind, uri, show, name, ms_text(at + offset), ms))
