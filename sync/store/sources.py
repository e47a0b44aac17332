"""One play, one row: the rules that decide when plays from different sources are the same.

A play reaches the history from the Web API (sync) or from an account-data export
(import). These constants and song_key() are shared by the store, which inserts API
plays next to imported ones, and by the importer; docs/import.md explains them.
"""

from __future__ import annotations

from enum import IntEnum

# An export play and a Web API play of the same song whose end times are at most this far
# apart are the same play (docs/import.md, "Matching" explains the figure). The API's
# `played_at` and the export's `ts` both mark the end of playback but come from different
# clocks and events; the pairing is one-to-one and nearest-first, so a generous window
# costs little while a tight one leaves duplicates behind.
MATCH_TOLERANCE_MS = 90_000


class Source(IntEnum):
    """listening_history.source: where a row came from (docs/import.md).

    The one home of the codes. SQL that needs them where no Python call passes them in
    (sql/repeatable/10_history.sql, 60_sync.sql) writes the numbers, and
    tests/store/test_codes.py checks what those functions do against this enum.
    """

    API = 0  # the Web API (`sync run`)
    EXTENDED = 1  # the extended streaming history export
    ACCOUNT = 2  # the account data export


# The importer's names for the same members (not a second home: the same objects).
SOURCE_API, SOURCE_EXTENDED, SOURCE_ACCOUNT = Source.API, Source.EXTENDED, Source.ACCOUNT

# How long the instant of an end time really is, by source: the API gives milliseconds,
# the extended export whole seconds, account data whole minutes. A stored export play may
# sit a few milliseconds after its stated time (see `ts` collisions in docs/import.md).
PRECISION_MS = {SOURCE_API: 0, SOURCE_EXTENDED: 1_000, SOURCE_ACCOUNT: 60_000}


def _lower(text: str) -> str:
    """Lower case one character at a time, as Postgres lower() does (simple case mapping):
    a final capital sigma becomes σ, not ς, and a dotted capital I plain i."""
    if text.isascii():
        return text.lower()
    return "".join(c.lower()[0] if c.lower() else c for c in text)


def song_key(track: str | None, artist: str | None) -> str:
    """Same song across sources whose track ids differ: lower-cased name and primary artist.

    The same rule as SQL function song_key (sql/repeatable/10_history.sql); docs/import.md.
    """
    return f"{_lower(track or '')}\x1f{_lower(artist or '')}"
