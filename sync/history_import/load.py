"""The Loader: writes one parsed export file after another into the user's history."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from sync.history_import.match import Staged, Stored, plan, reach_ms
from sync.history_import.parse import (
    SKIP_NO_SLOT,
    SPOKEN_CHAPTER,
    SPOKEN_EPISODE,
    ExportFormatError,
    ParsedFile,
    ms_text,
)
from sync.history_import.report import FileResult, OffsetStats
from sync.store import aggregates
from sync.store import imports as store
from sync.store import spoken as spoken_store
from sync.store.sources import MATCH_TOLERANCE_MS, song_key

log = logging.getLogger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _dt(at_ms: int) -> datetime:
    return _EPOCH + at_ms * _MS


class Loader:
    """Stores parsed files one by one inside the caller's transaction. Never commits."""

    def __init__(self, conn: psycopg.Connection, user_key: int, *, bulk: bool,
                 tolerance_ms: int = MATCH_TOLERANCE_MS):  # fmt: skip
        self.conn = conn
        self.user = user_key
        self.bulk = bulk
        self.tolerance_ms = tolerance_ms
        self.reach = reach_ms(tolerance_ms)
        self.files: dict[int, FileResult] = {}
        self.inserted = 0
        self.changed = 0  # plays inserted, deleted or given ms_played
        self.offsets_ms: list[int] = []
        self.track_ids: dict[str, int] = {}  # ref -> tracks.id, for the whole import
        self.song_keys: dict[int, str] = {}  # tracks.id -> song_key, of stored plays seen
        self._foreign_keys: list[tuple[str, str, str]] = []
        self.timings: Counter = Counter()  # seconds per step, shown with -v
        self._mark = time.perf_counter()

    def _step(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] += now - self._mark
        self._mark = now

    # transaction set-up and tear-down
    def begin(self) -> None:
        store.begin(self.conn, self.user)
        if self.bulk:
            self._foreign_keys = store.suspend_foreign_keys(self.conn)
        self._step("begin")

    def end(self) -> None:
        """Restore (and so validate) the suspended foreign keys; rebuild analytics after bulk."""
        if self.bulk and self.changed:
            # Day by day costs more than one pass over the user's history once most of it is
            # new (docs/import.md, "Aggregates").
            aggregates.rebuild(self.conn, self.user)
            self._step("analytics")
        store.restore_foreign_keys(self.conn, self._foreign_keys)
        self._step("foreign keys")
        log.debug("import steps: %s", ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))

    # one file
    def _keep_spoken(self, parsed: ParsedFile, result: FileResult) -> None:
        """Store the file's episode and chapter plays apart from music (store/spoken.py)."""
        done = spoken_store.store_plays(self.conn, self.user, parsed.spoken, parsed.source)
        result.episodes = done.new[SPOKEN_EPISODE]
        result.chapters = done.new[SPOKEN_CHAPTER]
        result.spoken_already = done.already
        result.spoken_replaced = done.replaced
        self._step("podcasts")  # its own line in -v's timings

    def add(self, file_no: int, parsed: ParsedFile) -> None:
        self._step("parse (waiting)")
        result = FileResult(parsed.name, parsed.kind, parsed.entries)
        result.skipped.update(parsed.skipped)
        result.episode_like = parsed.episode_like
        self.files[file_no] = result
        self._keep_spoken(parsed, result)
        if not parsed.rows:
            return
        ids = self._resolve(parsed.refs)
        source = parsed.source
        stored = self._stored(min(parsed.ts_ms) - self.reach, max(parsed.ts_ms) + self.reach)
        self._step("stored nearby")
        near = self._near(parsed.ts_ms, stored)
        prefix = f"{self.user}\t"
        if not near:  # the common case: nothing stored around these plays
            lines = [
                f"{prefix}{t}\t{ids[r]}\t{m}\t{source}\n"
                for t, r, m in zip(parsed.at_text, parsed.ref_idx, parsed.ms, strict=True)
            ]
            new_ms = [t + o for t, o in zip(parsed.ts_ms, parsed.offset_ms, strict=True)]
            changed: list[datetime] = []
        else:
            lines, new_ms, changed = self._merge(parsed, ids, stored, near, result)
        self._step("plan")
        if lines:
            try:
                store.copy_plays(self.conn, lines)
            except psycopg.DataError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ExportFormatError(parsed.name, f"unreadable ({first})") from None
        self._step("insert")
        result.new += len(lines)
        self.inserted += len(lines)
        self.changed += len(changed) + len(new_ms)
        if not self.bulk:  # a bulk load rebuilds the user's analytics once, at the end
            changed += [_EPOCH + t * _MS for t in new_ms]
            aggregates.refresh_days(self.conn, self.user, changed)
        self._step("analytics")

    def _resolve(self, refs: list[tuple]) -> list[int]:
        """tracks.id for each of the file's refs: known, found by URI or name, or created."""
        unknown = [r for r in refs if r[0] not in self.track_ids]
        if unknown:
            self.track_ids.update(store.resolve_tracks(self.conn, unknown, self.bulk))
            self._step("tracks")
        return [self.track_ids[r[0]] for r in refs]

    def _stored(self, lo_ms: int, hi_ms: int) -> list[Stored]:
        """The user's stored plays between two times, with their song keys."""
        rows = store.stored_between(self.conn, self.user, _dt(lo_ms), _dt(hi_ms))
        if not rows:
            return []
        keys = self.song_keys
        unknown = list({r[1] for r in rows if r[1] not in keys})
        if unknown:
            for tid, name, artist in store.track_names(self.conn, unknown):
                keys[tid] = song_key(name, artist)
        return [Stored(at, tid, src, ms, keys[tid]) for at, tid, src, ms in rows]

    def _near(self, ts_ms: list[int], stored: list[Stored]) -> set[int]:
        """Rows with a stored play close enough to matter (match or time collision)."""
        if not stored:
            return set()
        spans: list[list[int]] = []  # stored times +- reach, merged
        for at in sorted(e.at_ms for e in stored):
            if spans and at - self.reach <= spans[-1][1]:
                spans[-1][1] = at + self.reach
            else:
                spans.append([at - self.reach, at + self.reach])
        order = sorted(range(len(ts_ms)), key=ts_ms.__getitem__)
        times = [ts_ms[i] for i in order]
        near: set[int] = set()
        for lo, hi in spans:
            near.update(order[bisect_left(times, lo) : bisect_right(times, hi)])
        return near

    def _merge(self, parsed: ParsedFile, ids: list[int], stored: list[Stored], near: set[int],
               result: FileResult) -> tuple[list[str], list[int], list[datetime]]:  # fmt: skip
        """Rows near stored plays go through match.plan; the rest are simply new."""
        source = parsed.source
        prefix = f"{self.user}\t"
        keys: dict[int, str] = {}
        staged = []
        for row in sorted(near):
            r = parsed.ref_idx[row]
            if r not in keys:
                ref = parsed.refs[r]
                keys[r] = song_key(ref[2], ref[3])
            staged.append(Staged(row, parsed.ts_ms[row], ids[r], keys[r], parsed.ms[row]))
        decided = plan(staged, stored, source, self.tolerance_ms)
        columns = zip(parsed.at_text, parsed.ref_idx, parsed.ms, parsed.ts_ms, parsed.offset_ms,
                      strict=True)  # fmt: skip
        far = [(i, col) for i, col in enumerate(columns) if i not in near]
        lines = [f"{prefix}{t}\t{ids[r]}\t{m}\t{source}\n" for _, (t, r, m, _, _) in far]
        new_ms = [at + off for _, (_, _, _, at, off) in far]
        for row, at in decided.new:
            lines.append(f"{prefix}{ms_text(at)}\t{ids[parsed.ref_idx[row]]}\t"
                         f"{parsed.ms[row]}\t{source}\n")  # fmt: skip
            new_ms.append(at)
        fill = [(_dt(at), ms) for at, ms in decided.fill]
        changed = store.merge(self.conn, self.user, fill, [_dt(t) for t in decided.replace])
        self.offsets_ms += decided.offsets_ms
        result.matched += len(decided.fill)
        result.replaced += len(decided.replace)
        result.already += len(decided.already)
        if decided.no_slot:
            result.skipped[SKIP_NO_SLOT] += len(decided.no_slot)
        return lines, new_ms, changed

    def offsets(self) -> OffsetStats | None:
        if not self.offsets_ms:
            return None
        values = sorted(abs(v) for v in self.offsets_ms)
        return OffsetStats(
            count=len(values),
            median_ms=float(values[len(values) // 2]),
            p95_ms=float(values[min(len(values) - 1, int(len(values) * 0.95))]),
            max_ms=float(values[-1]),
        )
