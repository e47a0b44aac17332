"""How users are named in output: the one alias rule (user-N) and its parser.

Logs and summaries of public repositories are public, so users appear as a short
stable alias derived from the row key, which reveals nothing about the user, unless
the owner sets SYNC_SHOW_USER_IDS=true. Every command accepts the alias back.
"""

from __future__ import annotations

import re

_ALIAS = re.compile(r"^user-(\d+)$")


def alias(key: int, user_id: str, show_ids: bool) -> str:
    """The name output uses for a user: the alias user-<key>, or the Spotify id if shown."""
    return user_id if show_ids else f"user-{key}"


def parse_alias(text: str) -> int | None:
    """The user key an alias names (user-7 -> 7), or None when text is not an alias."""
    match = _ALIAS.match(text)
    return int(match[1]) if match else None
