"""`python -m sync login`: sign in with Spotify and store the user's refresh token."""

from __future__ import annotations

import argparse
from urllib.parse import urlparse

from sync.config import Settings
from sync.job import tokens
from sync.names import alias
from sync.signin import LoginIO, login


def _database_label(settings: Settings) -> str:
    if settings.database_url is None:
        return f"the embedded database in {settings.data_dir}/"
    try:
        parsed = urlparse(settings.database_url)
        return f"the database at {parsed.hostname}"
    except ValueError:
        return "the DATABASE_URL database"


def cmd_login(args: argparse.Namespace, settings: Settings, io: LoginIO | None = None) -> int:
    io = io or LoginIO()
    result = login(settings, headless=args.headless, io=io)
    name = alias(result.key, result.user_id, False)
    if result.created:
        io.say(f"Signed in as Spotify user {result.user_id}: added as {name} to "
               f"{_database_label(settings)}.")  # fmt: skip
    else:
        was = ""
        if result.previous_status and result.previous_status != "active":
            was = f" It was {result.previous_status}"
            was += f" ({result.previous_reason})" if result.previous_reason else ""
            was += " and is active again."
        io.say(f"Signed in again as Spotify user {result.user_id} ({name}): new refresh token "
               f"stored in {_database_label(settings)}.{was}")  # fmt: skip
    expires = tokens.refresh_token_expires_at(result.authorized_at)
    io.say(
        f"Run logs show this user as {name}. Spotify ends this sign-in on {expires:%Y-%m-%d} "
        "(6 months after authorizing): run python -m sync login again before then."
    )
    if result.embedded:
        io.say(
            "Note: DATABASE_URL is not set, so the user is stored on this machine only; "
            "GitHub Actions cannot see it. Put your database's connection string in .env as "
            "DATABASE_URL and run python -m sync login again to sync from Actions."
        )
    return 0
