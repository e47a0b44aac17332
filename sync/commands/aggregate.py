"""`python -m sync aggregate`: rebuild the analytics tables from the history."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

from sync import db
from sync.analytics import upkeep as analytics
from sync.commands import Context, Subcommands, add_user_argument, resolve_users
from sync.config import Settings
from sync.names import alias
from sync.store import aggregates
from sync.text import plural

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    agg = sub.add_parser("aggregate", help="rebuild the analytics tables from the history")
    add_user_argument(agg, "only this user", many=True)
    agg.add_argument("--full", action="store_true", help="rebuild everything from scratch")
    agg.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_aggregate(ctx.settings, args.user, full=args.full)


def cmd_aggregate(settings: Settings, users_named: Sequence[str], *, full: bool = False) -> int:
    """Rebuild aggregates from the history: stale users, or every chosen user with --full."""
    with db.open_database(settings) as conn:
        users = resolve_users(conn, users_named)
        conn.rollback()
        if not users:
            print("no users yet: run `python -m sync login` to add one")
            return 0
        rebuilt = 0
        for user in users:
            needed = full or analytics.is_stale(conn, user.key)
            conn.rollback()  # each rebuild below is its own transaction
            if not needed:
                continue
            started = time.monotonic()
            with conn.transaction():
                aggregates.rebuild(conn, user.key)
                plays = conn.execute(
                    "select coalesce(sum(plays), 0) from listening_days where user_id = %s",
                    (user.key,),
                ).fetchone()[0]
            rebuilt += 1
            name = alias(user.key, user.user_id, settings.show_user_ids)
            print(
                f"{name}: rebuilt from {plural(plays, 'play')} "
                f"({user.time_zone}) in {time.monotonic() - started:.1f}s"
            )
        if rebuilt == 0:
            users_text = plural(len(users), "user")
            print(f"analytics are up to date for {users_text} (--full rebuilds anyway)")
    return 0
