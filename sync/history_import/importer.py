"""The whole import in one transaction: parse in workers, load file after file, report counts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import psycopg

from sync.history_import.files import default_workers, parse_all
from sync.history_import.load import Loader
from sync.history_import.parse import (
    ACCOUNT,
    ACCOUNT_AUDIOBOOK,
    ACCOUNT_PODCAST,
    EXTENDED,
    EXTENDED_VIDEO,
    ParseOptions,
    SourceRef,
)
from sync.history_import.progress import Progress
from sync.history_import.report import ImportResult
from sync.store import imports as store
from sync.store.sources import MATCH_TOLERANCE_MS

log = logging.getLogger(__name__)

# Above this many plays (estimated from file sizes) and a fifth of the table, the import
# drops the foreign keys of listening_history, tracks and track_artists inside its
# transaction and adds them back (validating every row) before commit: a per-row foreign
# key check costs more than the insert itself. The analytics are then rebuilt once.
BULK_MIN_PLAYS = 100_000
BYTES_PER_ENTRY = {EXTENDED: 800, EXTENDED_VIDEO: 800, ACCOUNT: 130, ACCOUNT_PODCAST: 150,
                   ACCOUNT_AUDIOBOOK: 170}  # fmt: skip


def _use_bulk(conn: psycopg.Connection, sources: Sequence[SourceRef]) -> bool:
    estimate = sum(s.size // BYTES_PER_ENTRY[s.kind] for s in sources)
    if estimate < BULK_MIN_PLAYS:
        return False
    return estimate * 5 >= store.stored_plays_estimate(conn)


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
