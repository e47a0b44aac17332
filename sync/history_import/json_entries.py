"""An export file's JSON array, and where a file that is not valid JSON broke (1-based entry)."""

from __future__ import annotations

import json
import re

from sync.history_import.staged import ExportFormatError


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
