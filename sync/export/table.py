"""The export as CSV: one row per play, the `plays` view's columns, UTF-8, RFC 4180 quoting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import BinaryIO

from sync.export.query import CSV_COLUMNS


def write_csv(fh: BinaryIO, batches: Iterable[list[tuple]]) -> int:
    """Write a header row and the rows (query.csv_rows) into `fh`; return the number of plays.

    The csv module quotes a field holding a comma, a quote or a line break, doubles quotes
    inside it, and ends lines with CRLF, as RFC 4180 says; a missing value is empty.
    """
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    plays = 0
    for batch in batches:
        writer.writerows(batch)
        plays += len(batch)
    text.flush()
    text.detach()  # the caller closes (and renames) the file
    return plays
