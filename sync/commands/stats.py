"""`python -m sync stats`: listening statistics in the terminal."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime

from sync import db
from sync.analytics.listening import parse_period, pick_user
from sync.analytics.terminal import load_stats, render_stats
from sync.config import Settings
from sync.names import alias

log = logging.getLogger(__name__)


def cmd_stats(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    """Print totals, top artists and tracks, the last 30 days and the hour x weekday map."""
    period_key = parse_period(args.period)
    with db.open_database(settings) as conn:
        user = pick_user(conn, args.user)
        label = alias(user.key, user.user_id, settings.show_user_ids)
        stats = load_stats(conn, user, period_key, label, now)
    print(render_stats(stats), end="")
    return 0
