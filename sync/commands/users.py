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
from sync.commands import Context, Subcommands, resolve_user
from sync.config import Settings
from sync.errors import UserError
from sync.names import alias
from sync.statuses import UserStatus
from sync.store import aggregates
from sync.store import plays as plays_store
from sync.store import users as user_store
from sync.text import plural

log = logging.getLogger(__name__)


USER_HELP = "Spotify user id (or alias user-N)"


def add_parser(sub: Subcommands) -> None:
    users = sub.add_parser(
        "users",
        help="list users: status, last sync, plays, token expiry",
        description="without ACTION: list the users (status, last sync, plays, token expiry)",
    )
    users.set_defaults(handler=lambda args, ctx: cmd_users(ctx.settings))
    # optional: `users` alone lists them
    actions = users.add_subparsers(dest="users_command", metavar="[ACTION]")
    tz = actions.add_parser(
        "set-timezone", help="set a user's IANA time zone and rebuild analytics"
    )
    tz.add_argument("user", metavar="USER", help=USER_HELP)
    tz.add_argument("zone", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin")
    tz.set_defaults(handler=lambda args, ctx: cmd_set_timezone(ctx.settings, args.user, args.zone))
    remove = actions.add_parser("remove", help="remove a user (and their plays)")
    remove.add_argument("user", metavar="USER", help=USER_HELP)
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.add_argument("--keep-history", action="store_true", help="keep the user's plays")
    remove.set_defaults(handler=_remove_handler)


def _remove_handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_remove_user(
        ctx.settings, args.user, yes=args.yes, keep_history=args.keep_history, out=ctx.out
    )


def cmd_users(settings: Settings) -> int:
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
            status + (f" ({reason})" if reason and status != UserStatus.ACTIVE else ""),
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
    shown = {UserStatus.REMOVED: "-", UserStatus.DEMO: "-",
             UserStatus.NEEDS_REAUTH: "sign in again"}  # fmt: skip
    return shown.get(status, f"{expires:%Y-%m-%d}")


def cmd_set_timezone(settings: Settings, user_named: str, zone_named: str) -> int:
    """Set a user's zone and rebuild their aggregates in one transaction."""
    with db.open_database(settings) as conn:
        user = resolve_user(conn, user_named)
        zone = analytics.validate_zone(conn, zone_named)
        conn.rollback()
        with conn.transaction():
            user_store.set_time_zone(conn, user.key, zone)
            aggregates.rebuild(conn, user.key)
    name = alias(user.key, user.user_id, settings.show_user_ids)
    print(f"{name}: time zone is now {zone}; analytics rebuilt")
    return 0


def cmd_remove_user(
    settings: Settings,
    user_named: str,
    *,
    yes: bool = False,
    keep_history: bool = False,
    read_line: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> int:
    """Remove a user after asking (unless yes); keep_history erases only the tokens."""
    out = out or sys.stdout

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    with db.open_database(settings) as conn:
        user = resolve_user(conn, user_named)
        key, user_id, status = user.key, user.user_id, user.status
        plays = plays_store.count_plays(conn, key)
        conn.rollback()
        name = alias(key, user_id, settings.show_user_ids)
        who = f"{name} (Spotify user {user_id})" if name != user_id else name
        if keep_history:
            if status == UserStatus.REMOVED:
                say(f"{name} is already removed; its {plural(plays, 'play')} kept.")
                return 0
            what = (f"Remove {who}: erase its tokens and stop syncing it; its "
                    f"{plural(plays, 'play')} and statistics stay.")  # fmt: skip
        else:
            what = (f"Remove {who} and delete its {plural(plays, 'play')} and statistics. "
                    "This cannot be undone.")  # fmt: skip
        if not yes:
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
            deleted = user_store.remove_user(conn, key, keep_history)
    if keep_history:
        say(f"Removed {name}: tokens erased, no longer synced; {plural(plays, 'play')} kept. "
            "python -m sync login as that account resumes syncing.")  # fmt: skip
    else:
        say(f"Removed {name} and its {plural(deleted, 'play')}.")
    say("The user can also revoke the app's access on Spotify's side: account page > "
        "Manage apps.")  # fmt: skip
    return 0
