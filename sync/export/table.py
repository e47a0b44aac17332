"""The export as CSV: one row per play, the `plays` view's columns, UTF-8, RFC 4180 quoting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import BinaryIO

from sync.export.query import CSV_COLUMNS


def write_csv(
    fh: BinaryIO, user_id: str, tracks: Mapping[int, tuple], batches: Iterable[list[tuple]]
) -> int:
    """Write a header row and one row per play (query.csv_plays, with query.csv_tracks'
    values) into `fh`; return the number of plays.

    The csv module quotes a field holding a comma, a quote or a line break, doubles quotes
    inside it, and ends lines with CRLF, as RFC 4180 says; a missing value is empty.
    """
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    plays = 0
    for batch in batches:
        writer.writerows(
            (user_id, at, *tracks[track_id][:3], ms, *tracks[track_id][3:], source)
            for at, track_id, ms, source in batch
        )
        plays += len(batch)
    text.flush()
    text.detach()  # the caller closes (and renames) the file
    return plays
