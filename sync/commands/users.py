"""`python -m sync users` and its actions: list, remove, set-timezone."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from sync import db
from sync.analytics import upkeep as analytics
from sync.config import Settings
from sync.errors import UserError
from sync.names import alias
from sync.store import plays as plays_store
from sync.store import users as user_store
from sync.text import plural

log = logging.getLogger(__name__)


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    with db.open_database(settings) as conn:
        rows = user_store.user_overview(conn)
    if not rows:
        print("no users yet: run `python -m sync login` to add one")
        return 0
    header = ("user", "status", "last ok sync", "plays", "refresh token expires")
    table = [header]
    for user_id, key, status, reason, last_ok, plays, expires, _access in rows:
        table.append((
            alias(key, user_id, settings.show_user_ids),
            status + (f" ({reason})" if reason and status != "active" else ""),
            f"{last_ok:%Y-%m-%d %H:%M}" if last_ok else "never",
            str(plays),
            _expiry(status, expires),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _expiry(status: str, expires: datetime) -> str:
    """A removed user and the demo have no token; one who must sign in again has none that
    works."""
    return {"removed": "-", "demo": "-", "needs_reauth": "sign in again"}.get(
        status, f"{expires:%Y-%m-%d}"
    )


def cmd_set_timezone(args: argparse.Namespace, settings: Settings) -> int:
    """Set a user's zone and rebuild their aggregates in one transaction."""
    with db.open_database(settings) as conn:
        user = user_store.resolve_user(conn, args.user)
        zone = analytics.validate_zone(conn, args.zone)
        conn.rollback()
        with conn.transaction():
            user_store.set_time_zone(conn, user.key, zone)
            analytics.rebuild(conn, user.key)
    name = alias(user.key, user.user_id, settings.show_user_ids)
    print(f"{name}: time zone is now {zone}; analytics rebuilt")
    return 0


def cmd_remove_user(
    args: argparse.Namespace,
    settings: Settings,
    read_line: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    with db.open_database(settings) as conn:
        user = user_store.resolve_user(conn, args.user)
        key, user_id, status = user.key, user.user_id, user.status
        plays = plays_store.count_plays(conn, key)
        conn.rollback()
        name = alias(key, user_id, settings.show_user_ids)
        who = f"{name} (Spotify user {user_id})" if name != user_id else name
        if args.keep_history:
            if status == "removed":
                say(f"{name} is already removed; its {plural(plays, 'play')} kept.")
                return 0
            what = (f"Remove {who}: erase its tokens and stop syncing it; its "
                    f"{plural(plays, 'play')} and statistics stay.")  # fmt: skip
        else:
            what = (f"Remove {who} and delete its {plural(plays, 'play')} and statistics. "
                    "This cannot be undone.")  # fmt: skip
        if not args.yes:
            say(what)
            try:
                answer = read_line("Type yes to confirm: ")
            except EOFError:
                raise UserError(
                    "no confirmation (stdin is closed): nothing removed; pass --yes to remove "
                    "without asking"
                ) from None
            if answer.strip().lower() not in ("y", "yes"):
                say("Nothing removed.")
                return 1
        with conn.transaction():
            deleted = user_store.remove_user(conn, key, args.keep_history)
    if args.keep_history:
        say(f"Removed {name}: tokens erased, no longer synced; {plural(plays, 'play')} kept. "
            "python -m sync login as that account resumes syncing.")  # fmt: skip
    else:
        say(f"Removed {name} and its {plural(deleted, 'play')}.")
    say("The user can also revoke the app's access on Spotify's side: account page > "
        "Manage apps.")  # fmt: skip
    return 0
