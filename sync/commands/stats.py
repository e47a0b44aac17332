"""`python -m sync stats`: listening statistics in the terminal."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime

from sync import db
from sync.config import Settings
from sync.errors import UserError
from sync.names import alias
from sync.stats import load_stats, parse_period, render_stats
from sync.store import users as user_store

log = logging.getLogger(__name__)


def cmd_stats(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    """Print totals, top artists and tracks, the last 30 days and the hour x weekday map."""
    period_key = parse_period(args.period)
    with db.open_database(settings) as conn:
        if args.user:
            user = user_store.resolve_user(conn, args.user)
        else:
            users = user_store.all_users(conn)
            if not users:
                raise UserError("no users yet: run python -m sync login to add one")
            if len(users) > 1:
                raise UserError(
                    f"{len(users)} users stored: pass --user ID (python -m sync users lists them)"
                )
            user = users[0]
        label = alias(user.key, user.user_id, settings.show_user_ids)
        stats = load_stats(conn, user, period_key, label, now)
    print(render_stats(stats), end="")
    return 0
