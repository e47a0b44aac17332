"""Pure planning of how imported plays meet plays already stored. No I/O.

One play, one row, whatever the source (docs/import.md, "Matching"): an export play
and a stored play of the same song are the same play when

- the stored play came from the Web API (or from the other export format) and their end
  times are at most `tolerance_ms` apart, an export end time covering its whole second
  (extended history) or minute (account data); or
- the stored play came from the same export format and ends in the same second (minute):
  it was imported before.

Pairs are made one-to-one, nearest first, so two plays of a short song close together
never collapse into one. What a pair means depends on the stored play: a Web API play
gains the export's exact `ms_played`; an account-data play gives way to the same play from
the extended history (better time, real track); anything else is stored already.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

from sync.store.sources import (
    MATCH_TOLERANCE_MS,
    PRECISION_MS,
    SOURCE_ACCOUNT,
    SOURCE_API,
    SOURCE_EXTENDED,
)


def reach_ms(tolerance_ms: int = MATCH_TOLERANCE_MS) -> int:
    """How far from a staged end time a stored play can still matter (match or collision)."""
    return max(PRECISION_MS.values()) + tolerance_ms


@dataclass(slots=True)
class Stored:
    """A play already in listening_history near the imported ones."""

    at_ms: int  # played_at, ms since the epoch
    track_id: int
    source: int
    ms_played: int | None
    key: str  # song_key of its track


@dataclass(slots=True)
class Staged:
    """An export play (after the file's own duplicates were removed)."""

    row: int  # index into the ParsedFile's lists
    ts_ms: int  # stated end time
    track_id: int
    key: str
    ms: int  # ms_played


@dataclass
class Plan:
    fill: list[tuple[int, int]] = field(default_factory=list)  # (stored at_ms, ms_played)
    replace: list[int] = field(default_factory=list)  # stored at_ms of account plays to delete
    replaced_rows: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # staged rows stored already
    new: list[tuple[int, int]] = field(default_factory=list)  # (staged row, at_ms to store)
    no_slot: list[int] = field(default_factory=list)  # staged rows without a free millisecond
    offsets_ms: list[int] = field(default_factory=list)  # API minus export end time, per fill


def _pair_score(s: Staged, e: Stored, source: int, tolerance_ms: int) -> tuple[int, float] | None:
    """(gap, tie-break) when s and e can be the same play, else None."""
    pw = PRECISION_MS[source]
    ew = PRECISION_MS[e.source]
    d = e.at_ms - s.ts_ms
    if e.source == source and source in (SOURCE_EXTENDED, SOURCE_ACCOUNT):
        return (0, float(d)) if 0 <= d < pw else None
    gap = max(0, d - pw, -d - ew)
    if gap > tolerance_ms:
        return None
    return gap, abs(d + ew / 2 - pw / 2)


def plan(
    staged: list[Staged],
    stored: list[Stored],
    source: int,
    tolerance_ms: int = MATCH_TOLERANCE_MS,
) -> Plan:
    """Decide, for plays of one export format, which are new and which are stored already."""
    staged_match: dict[int, int] = {}
    taken_stored: set[int] = set()
    _pair_reimported(staged, stored, source, staged_match, taken_stored)
    pairs = _candidates(staged, stored, source, tolerance_ms, staged_match, taken_stored)
    pairs.sort()
    for *_, si, i in pairs:
        if si in staged_match or i in taken_stored:
            continue
        staged_match[si] = i
        taken_stored.add(i)

    result = Plan()
    fresh: list[Staged] = []
    deleted: set[int] = set()
    for si, s in enumerate(staged):
        i = staged_match.get(si)
        if i is None:
            fresh.append(s)
            continue
        e = stored[i]
        if e.source == SOURCE_API and e.ms_played is None:
            result.fill.append((e.at_ms, s.ms))
            result.offsets_ms.append(e.at_ms - s.ts_ms)
        elif e.source == SOURCE_ACCOUNT and source == SOURCE_EXTENDED:
            result.replace.append(e.at_ms)
            result.replaced_rows.append(s.row)
            deleted.add(e.at_ms)
            fresh.append(s)
        else:
            result.already.append(s.row)
    _place(fresh, stored, deleted, source, result)
    return result


def _candidates(staged: list[Staged], stored: list[Stored], source: int, tolerance_ms: int,
                staged_match: dict[int, int], taken: set[int]) -> list[tuple]:  # fmt: skip
    """Every (gap, tie-break, staged time, stored time, staged index, stored index) of a
    staged and a stored play of the same song (track id or song key) that can be one play."""
    reach = reach_ms(tolerance_ms)
    by_track: dict[int, list[tuple[int, int]]] = defaultdict(list)
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, e in enumerate(stored):
        if i not in taken:
            by_track[e.track_id].append((e.at_ms, i))
            by_key[e.key].append((e.at_ms, i))
    for entries in (*by_track.values(), *by_key.values()):
        entries.sort()
    end = len(stored)
    pairs = []
    for si, s in enumerate(staged):
        if si in staged_match:
            continue
        window = (s.ts_ms - reach, -1), (s.ts_ms + reach, end)
        near: set[int] = set()
        for entries in (by_track.get(s.track_id), by_key.get(s.key)):
            if entries:
                lo, hi = bisect_left(entries, window[0]), bisect_right(entries, window[1])
                near.update(i for _, i in entries[lo:hi])
        for i in near:
            score = _pair_score(s, stored[i], source, tolerance_ms)
            if score is not None:
                pairs.append((score[0], score[1], s.ts_ms, stored[i].at_ms, si, i))
    return pairs


def _pair_reimported(staged: list[Staged], stored: list[Stored], source: int,
                     staged_match: dict[int, int], taken: set[int]) -> None:  # fmt: skip
    """Fast path for a re-import: the same track from the same format in the same second.

    These pairs are what the general matching would choose first anyway (gap 0); finding
    them with one dictionary look-up each keeps importing an export twice cheap.
    """
    if source not in (SOURCE_EXTENDED, SOURCE_ACCOUNT):
        return
    width = PRECISION_MS[source]
    same: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, e in enumerate(stored):
        if e.source == source:
            same[(e.track_id, e.at_ms // width)].append(i)
    if not same:
        return
    for si, s in enumerate(staged):
        if s.ts_ms % width:
            continue  # not on a whole second (minute): leave it to the general matching
        for i in same.get((s.track_id, s.ts_ms // width), ()):
            if i not in taken:
                staged_match[si] = i
                taken.add(i)
                break


def _place(fresh: list[Staged], stored: list[Stored], deleted: set[int], source: int,
           result: Plan) -> None:  # fmt: skip
    """Give each new play a free end time: its own, or the next free millisecond after it."""
    width = PRECISION_MS[source]
    times = sorted(e.at_ms for e in stored if e.at_ms not in deleted)
    used: set[int] = set()
    for s in sorted(fresh, key=lambda s: (s.ts_ms, s.track_id, s.row)):
        lo = bisect_left(times, s.ts_ms)
        hi = bisect_left(times, s.ts_ms + width)
        taken = set(times[lo:hi])
        slot = next(
            (s.ts_ms + k for k in range(width) if s.ts_ms + k not in taken and
             s.ts_ms + k not in used),
            None,
        )  # fmt: skip
        if slot is None:
            result.no_slot.append(s.row)
        else:
            used.add(slot)
            result.new.append((s.row, slot))
