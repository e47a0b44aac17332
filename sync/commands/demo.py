"""`python -m sync demo`: a made-up year of listening, to see the product before any account.

The history (sync.demo) is stored the way a real one is: the older part written as
Spotify's export files and read by the import, the last hours fed hour by hour through
the sync's own transform and write. All of it, the removal of an earlier demo included,
is one transaction: a failure leaves the database as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sync import db, demo
from sync.analytics.terminal import load_stats, render_stats
from sync.commands import Context, Subcommands
from sync.commands.report import default_name, write_report
from sync.config import Settings
from sync.errors import UserError
from sync.history_import.files import find_sources
from sync.history_import.importer import import_export
from sync.history_import.parse import ParseOptions
from sync.job.transform import parse_items
from sync.names import alias
from sync.statuses import Outcome, UserStatus
from sync.store import outcome
from sync.store import users as user_store
from sync.store.users import UserRef
from sync.text import plural

log = logging.getLogger(__name__)

PERIOD = "12m"
NO_HOLDER = 0  # the demo is never claimed by a run: there is no lease to release


def add_parser(sub: Subcommands) -> None:
    demo = sub.add_parser(
        "demo", help="fill the embedded database with a made-up year of listening, then show it"
    )
    demo.add_argument(
        "--yes", action="store_true", help="also into the database DATABASE_URL names"
    )
    demo.add_argument("--out", metavar="FILE", help="report file (default report-<user>-12m.html)")
    demo.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_demo(ctx.settings, yes=args.yes, out=args.out)


def cmd_demo(
    settings: Settings,
    *,
    yes: bool = False,
    out: str | None = None,
    now: datetime | None = None,
) -> int:
    """Store the made-up history, show its stats and write its report (out: the file)."""
    if settings.database_url and not yes:
        where = db.where(settings.database_url)
        raise UserError(
            f"demo writes made-up plays into the database at {where} (from "
            "DATABASE_URL): unset DATABASE_URL to use the embedded database, or pass --yes to "
            "add the demo user there"
        )
    now = now or datetime.now(UTC)
    history = demo.make_history(now)
    with db.open_database(settings) as conn:
        conn.rollback()
        with conn.transaction():
            key = user_store.replace_demo_user(conn, demo.DEMO_USER, history.zone)
            imported = _import(conn, key, history)
            synced = _sync(conn, key, history)
        user = UserRef(key, demo.DEMO_USER, history.zone, UserStatus.DEMO)
        label = alias(key, demo.DEMO_USER, settings.show_user_ids)
        print(
            f"demo: {plural(imported + synced, 'made-up play')} from {history.first_day} to "
            f"{now:%Y-%m-%d} stored for {label} (Spotify id {demo.DEMO_USER}): {imported:,} "
            f"through the import of an export, {synced:,} through hourly syncs"
        )
        print()
        print(render_stats(load_stats(conn, user, PERIOD, label, now)), end="")
        path = Path(out) if out else Path(default_name(label, PERIOD))
        write_report(conn, user, PERIOD, label, path, now=now)
    print()
    print(f"report: {path}")
    print("next: python -m sync setup to keep your own listening history")
    print(f"      python -m sync users remove {demo.DEMO_USER} --yes to delete the demo")
    return 0


def _import(conn, key: int, history: demo.DemoHistory) -> int:
    """The export's part, written as files and read by the import: plays stored."""
    with tempfile.TemporaryDirectory(prefix="sync-demo-") as folder:
        for name, entries in demo.export_files(history).items():
            Path(folder, name).write_text(json.dumps(entries), encoding="utf-8")
        sources, _ignored = find_sources([folder])
        result = import_export(conn, key, sources, ParseOptions(), workers=1)
    return result.total("new")


def _sync(conn, key: int, history: demo.DemoHistory) -> int:
    """The last hours, run by run: the sync's transform and its one write per user."""
    new = 0
    for at, items in demo.sync_windows(history):
        plays, skipped = parse_items(items)
        result = {"status": str(Outcome.OK), "started_at": at.isoformat(),
                  "fetched": len(items), "skipped_items": skipped}  # fmt: skip
        new += len(outcome.save(conn, key, NO_HOLDER, None, result, plays))
    return new
