"""`python -m sync import`: backfill a user's history from Spotify's data export."""

from __future__ import annotations

import argparse
import logging
import sys

import psycopg

from sync import db
from sync.config import Settings
from sync.errors import UserError
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ExportFormatError, ParseOptions
from sync.history_import.progress import Progress
from sync.history_import.report import report_lines
from sync.names import alias
from sync.store import users as user_store

log = logging.getLogger(__name__)


def resolve_user(conn: psycopg.Connection, ident: str) -> tuple[int, str]:
    """(key, Spotify id) of a stored user, by Spotify id or alias user-N."""
    try:
        user = user_store.resolve_user(conn, ident)
    except UserError:
        raise UserError(
            f"no user {ident!r} in user_tokens: sign in first with `python -m sync login`, "
            "then import with --user set to the Spotify id (or alias) `python -m sync users` shows"
        ) from None
    finally:
        conn.rollback()
    if user.status == "removed":
        raise UserError(
            f"user {ident!r} was removed: sign in again with `python -m sync login` to import"
        )
    return user.key, user.user_id


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    min_seconds = getattr(args, "min_seconds", 30)
    if min_seconds < 0:
        raise UserError("--min-seconds must be 0 or more")
    options = ParseOptions(
        min_ms=int(round(min_seconds * 1000)),
        include_video=getattr(args, "include_video", False),
        exclude_shows=frozenset(s.strip().lower() for s in getattr(args, "exclude_show", [])),
    )
    if getattr(args, "include_podcasts", False):
        print("--include-podcasts is no longer needed: episodes and audiobook chapters are "
              "always kept, apart from music (docs/import.md)")  # fmt: skip
    sources, ignored = find_sources(args.paths)
    if not sources:
        raise UserError(
            f"no Spotify streaming history in {', '.join(args.paths)} ({ignored} other files): "
            "expected Streaming_History_Audio_*.json, endsong_*.json, "
            "StreamingHistory_music_*.json or StreamingHistory*.json, or the export .zip"
        )
    with db.open_database(settings) as conn:
        key, user_id = resolve_user(conn, args.user)
        show = not getattr(args, "no_progress", False) and sys.stderr.isatty()
        progress = Progress(sum(s.size for s in sources), len(sources), enabled=show)
        try:
            result = import_export(conn, key, sources, options, progress=progress,
                                   workers=getattr(args, "jobs", None))  # fmt: skip
        except ExportFormatError as exc:
            progress.finish()
            raise UserError(f"{exc}; nothing was imported (fix or remove that file)") from None
    for line in report_lines(result, alias(key, user_id, settings.show_user_ids)):
        print(line)
    return 0
