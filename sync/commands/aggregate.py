"""`python -m sync aggregate`: rebuild the analytics tables from the history."""

from __future__ import annotations

import argparse
import logging
import time

from sync import db
from sync.analytics import upkeep as analytics
from sync.config import Settings
from sync.names import alias
from sync.store import users as user_store
from sync.text import plural

log = logging.getLogger(__name__)


def cmd_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild aggregates from the history: stale users, or every chosen user with --full."""
    with db.open_database(settings) as conn:
        users = (
            [user_store.resolve_user(conn, ident) for ident in args.user]
            if args.user
            else user_store.all_users(conn)
        )
        conn.rollback()
        if not users:
            print("no users yet: run `python -m sync login` to add one")
            return 0
        rebuilt = 0
        for user in users:
            needed = args.full or analytics.is_stale(conn, user.key)
            conn.rollback()  # each rebuild below is its own transaction
            if not needed:
                continue
            started = time.monotonic()
            with conn.transaction():
                analytics.rebuild(conn, user.key)
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
