"""`python -m sync stats`: listening statistics in the terminal."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime

from sync import db
from sync.analytics.listening import parse_period
from sync.analytics.terminal import load_stats, render_stats
from sync.commands import (
    Context,
    Subcommands,
    add_period_argument,
    add_user_argument,
    resolve_user,
)
from sync.config import Settings
from sync.names import alias

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    stats = sub.add_parser("stats", help="print listening statistics in the terminal")
    add_user_argument(stats, "Spotify user id (default: the only user)")
    add_period_argument(stats)
    stats.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_stats(ctx.settings, user=args.user, period=args.period)


def cmd_stats(
    settings: Settings, *, user: str | None = None, period: str = "4w", now: datetime | None = None
) -> int:
    """Print totals, top artists and tracks, the last 30 days and the hour x weekday map."""
    period_key = parse_period(period)
    with db.open_database(settings) as conn:
        chosen = resolve_user(conn, user or None)
        label = alias(chosen.key, chosen.user_id, settings.show_user_ids)
        stats = load_stats(conn, chosen, period_key, label, now)
    print(render_stats(stats), end="")
    return 0
