"""What an import did, in counts only: no track names (output may be shared)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sync.history_import.parse import (
    ACCOUNT,
    ACCOUNT_AUDIOBOOK,
    ACCOUNT_PODCAST,
    EPISODE_LIKE_MS,
    EXTENDED,
    EXTENDED_VIDEO,
    SKIP_DUPLICATE,
    SKIP_EXCLUDED,
    SKIP_NO_SLOT,
    SKIP_REASONS,
)
from sync.store.sources import MATCH_TOLERANCE_MS
from sync.text import plural

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    name: str
    kind: str
    entries: int = 0  # entries read from the file
    new: int = 0  # plays inserted
    matched: int = 0  # synced (Web API) plays that gained the export's ms_played
    already: int = 0  # plays the history held already (earlier import, or matched before)
    replaced: int = 0  # account-data plays replaced by this extended-history play
    skipped: Counter = field(default_factory=Counter)
    episode_like: int = 0  # old account data: plays long enough to be podcast episodes
    episodes: int = 0  # podcast episode plays stored (apart from music)
    chapters: int = 0  # audiobook chapter plays stored
    spoken_already: int = 0  # episode or chapter plays stored before
    spoken_replaced: int = 0  # account-data episode or chapter plays replaced

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class OffsetStats:
    """How far apart matched export and Web API end times were (evidence for the tolerance)."""

    count: int
    median_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class ImportResult:
    files: list[FileResult]
    duration_s: float = 0.0
    bulk: bool = False
    offsets: OffsetStats | None = None

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    def skipped(self) -> Counter:
        total: Counter = Counter()
        for f in self.files:
            total.update(f.skipped)
        return total


KIND_LABEL = {
    EXTENDED: "extended streaming history",
    EXTENDED_VIDEO: "extended streaming history (video)",
    ACCOUNT: "account data",
    ACCOUNT_PODCAST: "account data (podcasts)",
    ACCOUNT_AUDIOBOOK: "account data (audiobooks)",
}
SKIP_LABEL = {
    "video": "video",
    "no_track": "no track",
    SKIP_EXCLUDED: "excluded show",
    "incognito": "incognito",
    "short": "too short",
    SKIP_DUPLICATE: "duplicate",
    SKIP_NO_SLOT: "no free time slot",
}


def _skips(counts: Counter) -> str:
    parts = [f"{SKIP_LABEL[r]} {counts[r]:,}" for r in SKIP_REASONS if counts.get(r)]
    return f"{sum(counts.values()):,} skipped" + (f" ({', '.join(parts)})" if parts else "")


def _spoken(episodes: int, chapters: int, already: int, replaced: int) -> str:
    """The episodes and chapters kept apart from music, in counts; empty when none."""
    if not (episodes or chapters or already or replaced):
        return ""
    text = (f"; podcasts and audiobooks (apart from music): {plural(episodes, 'episode play')}, "
            f"{plural(chapters, 'chapter play')} stored, {already:,} already stored")  # fmt: skip
    return text + (f", {replaced:,} account-data plays replaced" if replaced else "")


def _spoken_of(files: list[FileResult]) -> str:
    attrs = ("episodes", "chapters", "spoken_already", "spoken_replaced")
    return _spoken(*(sum(getattr(f, a) for f in files) for a in attrs))


def file_line(f: FileResult) -> str:
    text = (f"{f.name}: {f.entries:,} read, {f.new:,} new, {f.matched:,} matched synced plays, "
            f"{f.already:,} already stored")  # fmt: skip
    if f.replaced:
        text += f", {f.replaced:,} replaced account-data plays"
    return f"{text}, {_skips(f.skipped)}{_spoken_of([f])}"


def report_lines(result: ImportResult, who: str) -> list[str]:
    """What the import did, in counts only: no track names (output may be shared)."""
    lines = [file_line(f) for f in result.files]
    kinds = sorted({KIND_LABEL[f.kind] for f in result.files})
    rate = result.total("entries") / result.duration_s if result.duration_s else 0.0
    lines.append(
        f"imported {', '.join(kinds) or 'nothing'} for {who}: "
        f"{plural(len(result.files), 'file')}, "
        f"{result.total('entries'):,} entries read, {result.total('new'):,} new plays, "
        f"{result.total('matched'):,} synced plays gained ms_played, "
        f"{result.total('already'):,} already stored"
        + (f", {result.total('replaced'):,} account-data plays replaced"
           if result.total("replaced") else "")
        + f", {_skips(result.skipped())} in {result.duration_s:.1f}s ({rate:,.0f} entries/s)"
        + _spoken_of(result.files)
    )  # fmt: skip
    episode_like = result.total("episode_like")
    if episode_like:
        lines.append(
            f"{plural(episode_like, 'entry', 'entries')} of old account-data files "
            f"(StreamingHistory<n>.json) lasted over {EPISODE_LIKE_MS // 60_000} minutes and may "
            "be podcast episodes: that format does not tell episodes from songs. Skip a show "
            "with --exclude-show NAME (its name as the file's artistName)"
        )
    if result.offsets:
        o = result.offsets
        lines.append(
            f"export vs synced end times of matched plays: median {o.median_ms / 1000:.1f}s, "
            f"95% within {o.p95_ms / 1000:.1f}s, largest {o.max_ms / 1000:.1f}s "
            f"(tolerance {MATCH_TOLERANCE_MS / 1000:.0f}s)"
        )
    return lines
