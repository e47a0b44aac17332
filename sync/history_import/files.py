"""Finding an export's history files (zip, folder or single files) and parsing them in workers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sync.errors import UserError
from sync.history_import.parse import (
    ACCOUNT,
    ACCOUNT_AUDIOBOOK,
    ACCOUNT_PODCAST,
    EXTENDED,
    EXTENDED_VIDEO,
    SOURCE_OF_KIND,
    ParsedFile,
    ParseOptions,
    SourceRef,
    classify,
    read_and_parse,
    sniff,
)

log = logging.getLogger(__name__)


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
    order = {EXTENDED: 0, EXTENDED_VIDEO: 1, ACCOUNT: 2, ACCOUNT_PODCAST: 3, ACCOUNT_AUDIOBOOK: 4}
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
