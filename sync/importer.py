"""`sync import`: backfill a user's history from Spotify's personal data export.

The rules (what counts as a play, how export plays meet plays already synced from the
Web API, time collisions, placeholder tracks) are in docs/import.md; this module is the
machinery. Files are parsed a few at a time in worker processes (sync.export_parse, pure);
for each file, in order, the main process resolves its distinct tracks set-based in SQL,
plans the plays that have stored plays nearby (sync.export_match, pure), and COPYs the
rest straight into listening_history. Everything happens in ONE transaction: a malformed
file anywhere means nothing of the import is written.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import re
import sys
import time
import zipfile
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from sync import analytics, db, locks, schema, storage
from sync.config import Settings
from sync.errors import UserError
from sync.export_match import Staged, Stored, plan, reach_ms, song_key
from sync.export_parse import (
    ACCOUNT,
    ACCOUNT_PODCAST,
    EXTENDED,
    EXTENDED_VIDEO,
    MATCH_TOLERANCE_MS,
    PLACEHOLDER_ALBUM,
    PLACEHOLDER_ARTIST,
    PLACEHOLDER_SHOW,
    SKIP_DUPLICATE,
    SKIP_NO_SLOT,
    SKIP_REASONS,
    SOURCE_OF_KIND,
    ExportFormatError,
    ParsedFile,
    ParseOptions,
    SourceRef,
    classify,
    ms_text,
    read_and_parse,
    sniff,
)
from sync.report import alias

log = logging.getLogger(__name__)

# Above this many plays (estimated from file sizes) and a fifth of the table, the import
# drops the foreign keys of listening_history, tracks and track_artists inside its
# transaction and adds them back (validating every row) before commit: a per-row foreign
# key check costs more than the insert itself. The analytics are then rebuilt once.
BULK_MIN_PLAYS = 100_000
BYTES_PER_ENTRY = {EXTENDED: 800, EXTENDED_VIDEO: 800, ACCOUNT: 130, ACCOUNT_PODCAST: 150}
LOCK_TIMEOUT = "30s"

KIND_LABEL = {
    EXTENDED: "extended streaming history",
    EXTENDED_VIDEO: "extended streaming history (video)",
    ACCOUNT: "account data",
    ACCOUNT_PODCAST: "account data (podcasts)",
}
SKIP_LABEL = {
    "podcast": "podcast",
    "audiobook": "audiobook",
    "video": "video",
    "no_track": "no track",
    "incognito": "incognito",
    "short": "too short",
    SKIP_DUPLICATE: "duplicate",
    SKIP_NO_SLOT: "no free time slot",
}


# -- results ------------------------------------------------------------------------------
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


# -- finding the files --------------------------------------------------------------------
def _natural(text: str) -> list:
    """Sort key: Streaming_History_Audio_2019_2.json before ..._10.json."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def find_sources(paths: Sequence[str]) -> tuple[list[SourceRef], int]:
    """Every history file under the given zips, folders and files; plus how many were ignored.

    Extended history comes first, account data after it, each in natural name order, so
    the better format is stored first and the other one is matched against it.
    """
    found: list[SourceRef] = []
    ignored = 0
    seen: set[tuple[str, str | None]] = set()

    def add(ref: SourceRef) -> None:
        key = (os.path.realpath(ref.path), ref.member)
        if key not in seen:
            seen.add(key)
            found.append(ref)

    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise UserError(f"{raw}: no such file or folder (give the export .zip, its folder, "
                            "or its .json files)")  # fmt: skip
        if path.is_dir():
            for child in sorted(path.rglob("*"), key=lambda p: _natural(str(p))):
                if child.is_file() and child.suffix.lower() == ".zip":
                    refs, skipped = _zip_sources(child)
                    for ref in refs:
                        add(ref)
                    ignored += skipped
                elif child.is_file():
                    kind = classify(str(child.relative_to(path)))
                    if kind is None:
                        ignored += 1
                    else:
                        add(SourceRef(str(child.relative_to(path)), str(child), None, kind,
                                      child.stat().st_size))  # fmt: skip
        elif path.suffix.lower() == ".zip":
            refs, skipped = _zip_sources(path)
            for ref in refs:
                add(ref)
            ignored += skipped
        else:
            kind = classify(path.name)
            if kind is None:
                with open(path, "rb") as fh:
                    kind = sniff(fh.read(4096))
            if kind is None:
                raise UserError(
                    f"{raw}: not a Spotify streaming history file (expected "
                    "Streaming_History_Audio_*.json, endsong_*.json, StreamingHistory_music_*.json "
                    "or StreamingHistory*.json)"
                )
            add(SourceRef(path.name, str(path), None, kind, path.stat().st_size))
    order = {EXTENDED: 0, EXTENDED_VIDEO: 1, ACCOUNT: 2, ACCOUNT_PODCAST: 3}
    found.sort(key=lambda r: (SOURCE_OF_KIND[r.kind], order[r.kind]))  # stable: keeps name order
    return found, ignored


def _zip_sources(path: Path) -> tuple[list[SourceRef], int]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable .zip archive ({exc}); download the export "
                        "again or unpack it and give the folder") from None  # fmt: skip
    refs, ignored = [], 0
    for info in sorted(infos, key=lambda i: _natural(i.filename)):
        kind = classify(info.filename)
        if kind is None:
            ignored += 1
            continue
        refs.append(SourceRef(f"{path.name}:{info.filename}", str(path), info.filename, kind,
                              info.file_size))  # fmt: skip
    return refs, ignored


# -- parsing, in worker processes ----------------------------------------------------------
def default_workers(sources: Sequence[SourceRef]) -> int:
    return max(1, min(os.cpu_count() or 1, 4, len(sources)))


def parse_all(
    sources: Sequence[SourceRef], options: ParseOptions, workers: int
) -> Iterator[tuple[SourceRef, ParsedFile]]:
    """Parse files in order; with workers > 1, a few files ahead in other processes.

    At most workers + 1 files are in flight, so memory stays bounded whatever the export size.
    """
    if workers <= 1:
        for source in sources:
            yield source, read_and_parse(source, options)
        return
    context = multiprocessing.get_context("spawn")  # no inherited database connection
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        pending: deque = deque()
        queue = iter(sources)
        for source in queue:
            pending.append((source, pool.submit(read_and_parse, source, options)))
            if len(pending) > workers:
                break
        while pending:
            source, future = pending.popleft()
            parsed = future.result()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(read_and_parse, following, options)))
            yield source, parsed
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- progress -----------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr; silent when disabled (not a terminal, --no-progress)."""

    def __init__(
        self,
        total_bytes: int,
        total_files: int,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.total_bytes = max(1, total_bytes)
        self.total_files = total_files
        self.clock = clock
        self.started = clock()
        self._last = float("-inf")
        self._drawn = False
        self._width = 0  # longest line so far: shorter ones are padded over it

    def update(self, files_done: int, bytes_done: int, plays: int, force: bool = False,
               note: str = "") -> None:  # fmt: skip
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        share = min(1.0, bytes_done / self.total_bytes)
        bar = "#" * int(share * 30)
        line = (f"importing [{bar:<30}] {share:4.0%}  {files_done}/{self.total_files} files  "
                f"{plays:,} plays  {now - self.started:5.1f}s{note and '  ' + note}")  # fmt: skip
        self.stream.write(f"\r{line:<{self._width}}")
        self._width = max(self._width, len(line))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# -- loading, in one transaction -----------------------------------------------------------
_REFS_DDL = """
create temp table if not exists import_refs (
    ref text, kind smallint, track text, artist text, album text
) on commit drop;
create temp table if not exists import_found (ref text, track_id integer) on commit drop;
create temp table if not exists import_new (
    ref text, kind smallint, track text, artist text, album text
) on commit drop;
create temp table if not exists import_artists (name text, artist_id integer) on commit drop;
"""

# Lower-cased "track name <US> primary artist name" (export_match.song_key, in SQL): how
# account-data rows find an existing track.
_TRACK_KEY = "lower({t}.name) || chr(31) || lower(coalesce({a}.name, ''))"
_REF_KEY = "lower({s}.track) || chr(31) || lower(coalesce({s}.artist, ''))"


def _album_uri(r: str) -> str:
    return (
        f"case when {r}.kind in (2, 3) then '{PLACEHOLDER_SHOW}' || left({r}.album, 300) "
        f"else '{PLACEHOLDER_ALBUM}' || left(coalesce({r}.artist, ''), 300) || ':' "
        f"|| left({r}.album, 300) end"
    )


# From the refs of a file the history does not know yet to track ids, set-based:
# (step name, statement). Existing tracks by URI, then by name and artist (real Spotify
# tracks first); the rest are created with their album and primary artist, reusing an
# artist of the same name (a real one first).
_RESOLVE_STATEMENTS = [
    (
        "tracks: by uri",  # lateral: an index probe per ref, never a scan of all tracks
        """insert into import_found (ref, track_id)
           select r.ref, t.id from import_refs r
             cross join lateral (select id from tracks where uri = r.ref) t""",
    ),
    (
        "tracks: by name",
        f"""insert into import_found (ref, track_id)
            select r.ref, m.id
              from import_refs r
              join (select distinct on (k) k, id
                      from (select {_TRACK_KEY.format(t="t", a="a")} as k, t.id, t.uri
                              from tracks t
                              left join track_artists ta on ta.track_id = t.id and ta.position = 0
                              left join artists a on a.id = ta.artist_id) x
                     where k in (select {_REF_KEY.format(s="i")} from import_refs i
                                  where i.kind in (1, 3))
                     order by k, (uri like 'spotify:track:%%') desc, id) m
                on m.k = {_REF_KEY.format(s="r")}
             where r.kind in (1, 3)
               and not exists (select 1 from import_found f where f.ref = r.ref)""",
    ),
    (
        "tracks: new",
        """insert into import_new (ref, kind, track, artist, album)
           select ref, kind, track, artist, album from import_refs r
            where not exists (select 1 from import_found f where f.ref = r.ref)""",
    ),
    (
        "tracks: artists",
        f"""insert into artists (uri, name)
            select distinct '{PLACEHOLDER_ARTIST}' || left(n.artist, 300), n.artist
              from import_new n
             where n.kind in (0, 1) and n.artist is not null
               and not exists (select 1 from artists a where a.name = n.artist)
             order by 1
                on conflict (uri) do nothing;
            insert into import_artists (name, artist_id)
            select distinct on (name) name, id from artists
             where name in (select artist from import_new where kind in (0, 1))
             order by name, (uri like 'spotify:artist:%%') desc, id""",
    ),
    (
        "tracks: albums",
        f"""insert into albums (uri, name)
            select distinct {_album_uri("n")}, n.album from import_new n
             where n.album is not null order by 1
                on conflict (uri) do nothing""",
    ),
]
# New tracks and their primary artist; the created rows come back. {conflict} is
# "on conflict do nothing" except in bulk mode, where the import holds these tables
# exclusively and every ref is known to be new (an upsert costs half as much again).
_CREATE_TRACKS = f"""
    with created as (
        insert into tracks (uri, spotify_id, name, album_id, is_local)
        select n.ref,
               case when n.ref ~ '^spotify:(track|episode):[^:]+$'
                    then split_part(n.ref, ':', 3) end,
               coalesce(n.track, n.ref), al.id, n.ref like 'spotify:local:%'
          from import_new n
          left join lateral (select id from albums where uri = {_album_uri("n")}) al
            on n.album is not null
         order by n.ref
        {{conflict}}
        returning id, uri),
    linked as (
        insert into track_artists (track_id, position, artist_id)
        select c.id, 0, a.artist_id
          from created c
          join import_new n on n.ref = c.uri and n.kind in (0, 1)
          join import_artists a on a.name = n.artist
         order by 1
        {{conflict}})
    select uri, id from created"""


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
        c = self.conn
        c.execute("set local time zone 'UTC'")  # export times without a zone are UTC
        c.execute("set local statement_timeout = 0")
        self._lock_user()
        c.execute(_REFS_DDL)
        if self.bulk:
            self._suspend_foreign_keys()
        self._step("begin")

    def _lock_user(self) -> None:
        """Serialise with `sync run` for this user (same advisory lock key as the pipeline)."""
        args = (locks.USER, self.user)
        if not self.conn.execute("select pg_try_advisory_xact_lock(%s, %s)", args).fetchone()[0]:
            log.info("a sync of this user is running: waiting for it to finish")
            self.conn.execute("select pg_advisory_xact_lock(%s, %s)", args)

    def _suspend_foreign_keys(self) -> None:
        c = self.conn
        self._foreign_keys = c.execute(
            """select conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                 from pg_constraint
                where conrelid = any(array['listening_history', 'tracks', 'track_artists']
                                     ::regclass[])
                  and contype = 'f'
                order by 1, 2"""
        ).fetchall()
        c.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
        try:
            for table, name, _ in self._foreign_keys:
                drop = sql.SQL("alter table {} drop constraint {}")
                c.execute(drop.format(sql.Identifier(table), sql.Identifier(name)))
        except psycopg.errors.LockNotAvailable:
            raise UserError(
                "listening_history is in use by another session (a running sync or an open "
                "query) and could not be locked for the bulk load: try again in a minute"
            ) from None
        c.execute("set local lock_timeout = 0")

    def end(self) -> None:
        """Restore (and so validate) the suspended foreign keys; rebuild analytics after bulk."""
        if self.bulk and self.changed:
            # Day by day costs more than one pass over the user's history once most of it is
            # new (docs/import.md, "Aggregates").
            analytics.rebuild(self.conn, self.user)
            self._step("analytics")
        for table, name, definition in self._foreign_keys:
            add = sql.SQL("alter table {} add constraint {} ")
            self.conn.execute(
                add.format(sql.Identifier(table), sql.Identifier(name)) + sql.SQL(definition)
            )
        self._step("foreign keys")
        log.debug("import steps: %s", ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))

    # one file
    def add(self, file_no: int, parsed: ParsedFile) -> None:
        self._step("parse (waiting)")
        result = FileResult(parsed.name, parsed.kind, parsed.entries)
        result.skipped.update(parsed.skipped)
        self.files[file_no] = result
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
                with self.conn.cursor().copy(
                    "copy listening_history (user_id, played_at, track_id, ms_played, source) "
                    "from stdin"
                ) as copy:
                    copy.write("".join(lines).encode())
            except psycopg.DataError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ExportFormatError(parsed.name, f"unreadable ({first})") from None
        self._step("insert")
        result.new += len(lines)
        self.inserted += len(lines)
        self.changed += len(changed) + len(new_ms)
        if not self.bulk:  # a bulk load rebuilds the user's analytics once, at the end
            changed += [_EPOCH + t * _MS for t in new_ms]
            analytics.refresh_days(self.conn, self.user, changed)
        self._step("analytics")

    def _resolve(self, refs: list[tuple]) -> list[int]:
        """tracks.id for each of the file's refs: known, found by URI or name, or created."""
        unknown = [r for r in refs if r[0] not in self.track_ids]
        if unknown:
            c = self.conn
            with c.cursor().copy(
                "copy import_refs (ref, kind, track, artist, album) from stdin"
            ) as copy:
                for row in unknown:
                    copy.write_row(row)
            self._step("tracks: refs")
            for step, statement in _RESOLVE_STATEMENTS:
                c.execute(statement)
                self._step(step)
            conflict = "" if self.bulk else "on conflict do nothing"
            created = dict(c.execute(_CREATE_TRACKS.format(conflict=conflict)).fetchall())
            self._step("tracks: tracks")
            found = dict(c.execute("select ref, track_id from import_found").fetchall())
            late = [r[0] for r in unknown if r[0] not in created and r[0] not in found]
            if late:  # created by a concurrent sync in the meantime
                found.update(c.execute("select uri, id from tracks where uri = any(%s)",
                                       (late,)).fetchall())  # fmt: skip
            self.track_ids.update(created)
            self.track_ids.update(found)
            self._step("tracks: resolved")
            # truncate, not delete: deleted rows stay in the tables until the transaction ends
            c.execute("truncate import_refs, import_found, import_new, import_artists")
            self._step("tracks: ids")
        return [self.track_ids[r[0]] for r in refs]

    def _stored(self, lo_ms: int, hi_ms: int) -> list[Stored]:
        """The user's stored plays between two times, with their song keys."""
        c = self.conn
        rows = c.execute(
            """select (extract(epoch from played_at) * 1000)::bigint, track_id, source, ms_played
                 from listening_history
                where user_id = %s and played_at between %s and %s""",
            (self.user, _dt(lo_ms), _dt(hi_ms)),
        ).fetchall()
        if not rows:
            return []
        keys = self.song_keys
        unknown = list({r[1] for r in rows if r[1] not in keys})
        if unknown:
            for tid, name, artist in c.execute(
                """select t.id, t.name, a.name from tracks t
                     left join track_artists ta on ta.track_id = t.id and ta.position = 0
                     left join artists a on a.id = ta.artist_id
                    where t.id = any(%s)""",
                (unknown,),
            ):
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
        """Rows near stored plays go through export_match.plan; the rest are simply new."""
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
        changed = []
        c = self.conn
        if decided.fill:
            at, ms = zip(*decided.fill, strict=True)
            filled = c.execute(
                """update listening_history h set ms_played = v.ms
                     from unnest(%s::timestamptz[], %s::integer[]) as v(at, ms)
                    where h.user_id = %s and h.played_at = v.at
                returning h.played_at""",
                ([_dt(t) for t in at], list(ms), self.user),
            ).fetchall()
            changed += [r[0] for r in filled]
            self.offsets_ms += decided.offsets_ms
        if decided.replace:
            gone = c.execute(
                """delete from listening_history
                    where user_id = %s and played_at = any(%s::timestamptz[])
                returning played_at""",
                (self.user, [_dt(t) for t in decided.replace]),
            ).fetchall()
            changed += [r[0] for r in gone]
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


def _use_bulk(conn: psycopg.Connection, sources: Sequence[SourceRef]) -> bool:
    estimate = sum(s.size // BYTES_PER_ENTRY[s.kind] for s in sources)
    if estimate < BULK_MIN_PLAYS:
        return False
    stored = conn.execute(
        "select greatest(reltuples, 0) from pg_class where oid = 'listening_history'::regclass"
    ).fetchone()[0]
    return estimate * 5 >= stored


def import_export(
    conn: psycopg.Connection,
    user_key: int,
    sources: Sequence[SourceRef],
    options: ParseOptions,
    *,
    workers: int | None = None,
    bulk: bool | None = None,
    progress: Progress | None = None,
    tolerance_ms: int = MATCH_TOLERANCE_MS,
    clock: Callable[[], float] = time.monotonic,
) -> ImportResult:
    """Import the files into the user's history in one transaction; return what happened.

    Raises ExportFormatError (nothing written) when a file is malformed.
    """
    started = clock()
    workers = default_workers(sources) if workers is None else workers
    bytes_done = 0
    with conn.transaction():
        bulk = _use_bulk(conn, sources) if bulk is None else bulk
        loader = Loader(conn, user_key, bulk=bulk, tolerance_ms=tolerance_ms)
        loader.begin()
        for file_no, (source, parsed) in enumerate(parse_all(sources, options, workers)):
            loader.add(file_no, parsed)
            bytes_done += source.size
            if progress:
                progress.update(file_no + 1, bytes_done, loader.inserted)
        if progress and loader.bulk:
            progress.update(len(sources), bytes_done, loader.inserted, force=True,
                            note="checking keys, updating analytics")  # fmt: skip
        loader.end()
    if progress:
        progress.update(len(sources), bytes_done, loader.inserted, force=True)
        progress.finish()
    offsets = loader.offsets()
    files = [loader.files[i] for i in sorted(loader.files)]
    return ImportResult(files, clock() - started, bulk, offsets)


# -- command ------------------------------------------------------------------------------
def resolve_user(conn: psycopg.Connection, ident: str) -> tuple[int, str]:
    """(key, Spotify id) of a stored user, by Spotify id or alias user-N."""
    try:
        user = storage.resolve_user(conn, ident)
    except UserError:
        raise UserError(
            f"no user {ident!r} in user_tokens: sign in first with `python -m sync login`, "
            "then import with --user set to the Spotify id (or alias) `python -m sync users` shows"
        ) from None
    finally:
        conn.rollback()
    if user.status == "removed":
        raise UserError(
            f"user {ident!r} was removed: sign in again with `python -m sync login` to import"
        )
    return user.key, user.user_id


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _skips(counts: Counter) -> str:
    parts = [f"{SKIP_LABEL[r]} {counts[r]:,}" for r in SKIP_REASONS if counts.get(r)]
    return f"{sum(counts.values()):,} skipped" + (f" ({', '.join(parts)})" if parts else "")


def file_line(f: FileResult) -> str:
    text = (f"{f.name}: {f.entries:,} read, {f.new:,} new, {f.matched:,} matched synced plays, "
            f"{f.already:,} already stored")  # fmt: skip
    if f.replaced:
        text += f", {f.replaced:,} replaced account-data plays"
    return f"{text}, {_skips(f.skipped)}"


def report_lines(result: ImportResult, who: str) -> list[str]:
    """What the import did, in counts only: no track names (output may be shared)."""
    lines = [file_line(f) for f in result.files]
    kinds = sorted({KIND_LABEL[f.kind] for f in result.files})
    rate = result.total("entries") / result.duration_s if result.duration_s else 0.0
    lines.append(
        f"imported {', '.join(kinds) or 'nothing'} for {who}: "
        f"{_plural(len(result.files), 'file')}, "
        f"{result.total('entries'):,} entries read, {result.total('new'):,} new plays, "
        f"{result.total('matched'):,} synced plays gained ms_played, "
        f"{result.total('already'):,} already stored"
        + (f", {result.total('replaced'):,} account-data plays replaced"
           if result.total("replaced") else "")
        + f", {_skips(result.skipped())} in {result.duration_s:.1f}s ({rate:,.0f} entries/s)"
    )  # fmt: skip
    if result.offsets:
        o = result.offsets
        lines.append(
            f"export vs synced end times of matched plays: median {o.median_ms / 1000:.1f}s, "
            f"95% within {o.p95_ms / 1000:.1f}s, largest {o.max_ms / 1000:.1f}s "
            f"(tolerance {MATCH_TOLERANCE_MS / 1000:.0f}s)"
        )
    return lines


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    min_seconds = getattr(args, "min_seconds", 30)
    if min_seconds < 0:
        raise UserError("--min-seconds must be 0 or more")
    options = ParseOptions(
        min_ms=int(round(min_seconds * 1000)),
        include_podcasts=getattr(args, "include_podcasts", False),
        include_video=getattr(args, "include_video", False),
    )
    sources, ignored = find_sources(args.paths)
    if not sources:
        raise UserError(
            f"no Spotify streaming history in {', '.join(args.paths)} ({ignored} other files): "
            "expected Streaming_History_Audio_*.json, endsong_*.json, "
            "StreamingHistory_music_*.json or StreamingHistory*.json, or the export .zip"
        )
    url = db.database_url(settings)
    with db.connect(url) as conn:
        applied = schema.migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        key, user_id = resolve_user(conn, args.user)
        show = not getattr(args, "no_progress", False) and sys.stderr.isatty()
        progress = Progress(sum(s.size for s in sources), len(sources), enabled=show)
        try:
            result = import_export(conn, key, sources, options, progress=progress,
                                   workers=getattr(args, "jobs", None))  # fmt: skip
        except ExportFormatError as exc:
            progress.finish()
            raise UserError(f"{exc}; nothing was imported (fix or remove that file)") from None
    for line in report_lines(result, alias(key, user_id, settings.show_user_ids)):
        print(line)
    return 0
