"""What is wrong with a DATABASE_URL, said once for every command and for `doctor`.

Pure: a string in, a problem (what is wrong, how to fix it) or None out. load_settings
turns a problem into the one-line error of every command (and of the Actions run);
doctor shows the same text as its DATABASE_URL check. Menu paths are the README's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlparse

FORMAT = "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
SUPABASE_CONNECT = (
    "Connect (top of the project page) > Session pooler"  # README, Quick start step 3
)
SUPABASE_RESET = "Project Settings > Database > Reset database password"  # README step 3
TRANSACTION_POOLER_PORT = 6543  # Supabase's transaction pooler; its Session pooler is 5432
_PLACEHOLDER = re.compile(r"\[?YOUR[-_ ]PASSWORD\]?", re.IGNORECASE)
_MUST_ENCODE = {"@": "%40", "/": "%2F", "?": "%3F", "#": "%23", "%": "%25"}
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a % that starts no %XX escape


@dataclass(frozen=True)
class UrlProblem:
    detail: str  # what is wrong, after "DATABASE_URL"
    fix: str

    def message(self) -> str:
        return f"DATABASE_URL {self.detail}: {self.fix}"


def unquote(value: str) -> str:
    """Drop one pair of surrounding quotes (a copy of `NAME="value"` into a secret)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def is_placeholder(text: str) -> bool:
    """Whether text holds Supabase's [YOUR-PASSWORD] template (no secret: safe to show)."""
    return bool(_PLACEHOLDER.search(text))


def database_url_problem(url: str) -> UrlProblem | None:
    """The first thing that stops `url` from working, or None."""
    if is_placeholder(url):
        return UrlProblem(
            "still holds Supabase's [YOUR-PASSWORD] placeholder",
            "replace it, brackets included, with your database password (forgotten? "
            f"Supabase: {SUPABASE_RESET})",
        )
    raw = _raw_password_characters(url)
    if raw:
        encoded = ", ".join(f"{c} as {_MUST_ENCODE[c]}" for c in raw)
        return UrlProblem(
            f"has {' and '.join(repr(c) for c in raw)} in the password, which ends it early",
            f"write {encoded} in the password part (or choose a password without them)",
        )
    if not _parses(url):
        return UrlProblem(
            "is not a valid connection string",
            f"use {FORMAT} (Supabase: {SUPABASE_CONNECT}, copy the string and fill in "
            "the password)",
        )
    return None


def transaction_pooler_problem(url: str | None) -> UrlProblem | None:
    """Port 6543: the one wording of `run`, `doctor` and `setup` for the transaction pooler.

    A transaction pooler hands each transaction to whichever server connection is free, so
    the session-level advisory lock migrate takes (one schema change at a time) is taken
    on one server connection and released on another, where it is not held. Prepared
    statements are off (db.connect), and leases are plain UPDATEs: the lock is what breaks.
    """
    try:
        port = urlparse(url or "").port
    except ValueError:
        return None  # a malformed URL gets its own message
    if port != TRANSACTION_POOLER_PORT:
        return None
    return UrlProblem(
        f"uses port {TRANSACTION_POOLER_PORT}, Supabase's transaction pooler, which breaks the "
        "session-level advisory lock migrate takes while it changes the tables",
        f"use the Session pooler connection string ({SUPABASE_CONNECT}, port 5432)",
    )


def _raw_password_characters(url: str) -> list[str]:
    """Characters of _MUST_ENCODE that appear unencoded between '://' and the last '@'."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return []
    userinfo = rest.rsplit("@", 1)[0]
    found = [c for c in _MUST_ENCODE if c != "%" and c in userinfo]
    if _BARE_PERCENT.search(userinfo):  # the driver would decode it, or refuse the URL
        found.append("%")
    return found


def _parses(url: str) -> bool:
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        return False
    return parsed.scheme in ("postgres", "postgresql")
