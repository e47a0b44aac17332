"""Small wording helpers shared by every command's output."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 day', '2 days', '1,000 entries' (pass `many` when adding an s is wrong)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
