"""`python -m sync import`: backfill a user's history from Spotify's data export."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from sync import db
from sync.commands import (
    Context,
    Subcommands,
    add_user_argument,
    options_from,
    positive_int,
    resolve_user,
)
from sync.config import Settings
from sync.errors import UserError
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ExportFormatError, ParseOptions
from sync.history_import.progress import Progress
from sync.history_import.report import report_lines
from sync.names import alias
from sync.statuses import UserStatus

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    imp = sub.add_parser("import", help="import Spotify's data export (zip, folder or files)")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="export .zip, folder or .json files")
    add_user_argument(imp, "Spotify user id (or alias user-N) to import for", required=True)
    imp.add_argument(
        "--min-seconds",
        type=float,
        default=30,
        metavar="S",
        help="skip plays shorter than this (default 30, like the Web API)",
    )
    imp.add_argument(
        "--include-podcasts",
        action="store_true",
        help=argparse.SUPPRESS,  # no longer needed: episodes are kept apart (issue 18)
    )
    imp.add_argument(
        "--include-video",
        action="store_true",
        help="also read Streaming_History_Video files (skipped by default)",
    )
    imp.add_argument(
        "--exclude-show",
        action="append",
        default=[],
        metavar="NAME",
        help="account data (old StreamingHistory<n>.json mixes in episodes): skip plays whose "
        "artistName is this show "
        "(exact, any case; repeatable)",
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imp.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="processes parsing files in parallel (default: CPUs, at most 4)",
    )
    imp.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_import(ctx.settings, options_from(ImportOptions, args))


@dataclass(frozen=True)
class ImportOptions:
    """`import`'s flags (each field is its flag's dest)."""

    paths: Sequence[str]
    user: str
    min_seconds: float = 30
    include_podcasts: bool = False  # no longer needed: says so in one line
    include_video: bool = False
    exclude_show: Sequence[str] = ()
    no_progress: bool = False
    jobs: int | None = None


def import_target(conn: psycopg.Connection, ident: str) -> tuple[int, str]:
    """(key, Spotify id) of the stored user to import for, by Spotify id or alias user-N."""
    try:
        user = resolve_user(conn, ident)
    except UserError:
        raise UserError(
            f"no user {ident!r} in user_tokens: sign in first with `python -m sync login`, "
            "then import with --user set to the Spotify id (or alias) `python -m sync users` shows"
        ) from None
    finally:
        conn.rollback()
    if user.status == UserStatus.REMOVED:
        raise UserError(
            f"user {ident!r} was removed: sign in again with `python -m sync login` to import"
        )
    return user.key, user.user_id


def cmd_import(settings: Settings, flags: ImportOptions) -> int:
    if flags.min_seconds < 0:
        raise UserError("--min-seconds must be 0 or more")
    options = ParseOptions(
        min_ms=int(round(flags.min_seconds * 1000)),
        include_video=flags.include_video,
        exclude_shows=frozenset(s.strip().lower() for s in flags.exclude_show),
    )
    if flags.include_podcasts:
        print("--include-podcasts is no longer needed: episodes and audiobook chapters are "
              "always kept, apart from music (docs/import.md)")  # fmt: skip
    sources, ignored = find_sources(flags.paths)
    if not sources:
        raise UserError(
            f"no Spotify streaming history in {', '.join(flags.paths)} ({ignored} other files): "
            "expected Streaming_History_Audio_*.json, endsong_*.json, "
            "StreamingHistory_music_*.json or StreamingHistory*.json, or the export .zip"
        )
    with db.open_database(settings) as conn:
        key, user_id = import_target(conn, flags.user)
        show = not flags.no_progress and sys.stderr.isatty()
        progress = Progress(sum(s.size for s in sources), len(sources), enabled=show)
        try:
            result = import_export(conn, key, sources, options, progress=progress,
                                   workers=flags.jobs)  # fmt: skip
        except ExportFormatError as exc:
            progress.finish()
            raise UserError(f"{exc}; nothing was imported (fix or remove that file)") from None
    for line in report_lines(result, alias(key, user_id, settings.show_user_ids)):
        print(line)
    return 0
