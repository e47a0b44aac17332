"""`python -m sync db url|stop`: look at the embedded database with any SQL client."""

from __future__ import annotations

import logging

from sync import db
from sync.commands import Subcommands
from sync.config import Settings, datadir
from sync.errors import UserError

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    dbp = sub.add_parser("db", help="the embedded database: connection string, stop")
    db_sub = dbp.add_subparsers(dest="db_command", metavar="ACTION")
    db_sub.required = True
    db_sub.add_parser("url", help="print its connection string; keep it running").set_defaults(
        handler=lambda args, ctx: cmd_db_url(ctx.settings)
    )
    db_sub.add_parser("stop", help="stop it (after db url)").set_defaults(
        handler=lambda args, ctx: cmd_db_stop(ctx.settings)
    )


def _embedded_only(settings: Settings) -> None:
    if settings.database_url:
        raise UserError(
            "DATABASE_URL is set, so commands use that database, not the embedded one: "
            "nothing to show (its connection string is your DATABASE_URL; not printed here)"
        )


def cmd_db_url(settings: Settings) -> int:
    """Start the embedded server, keep it running after this command, print its URL."""
    _embedded_only(settings)
    (settings.data_dir / datadir.KEEP_RUNNING).parent.mkdir(parents=True, exist_ok=True)
    datadir.refuse_if_committable(settings.data_dir)
    (settings.data_dir / datadir.KEEP_RUNNING).touch()
    with db.open_database(settings):  # migrated, so a client sees the tables
        url = db.database_url(settings)
    print(url.replace("://postgres:@", "://postgres@", 1))
    log.info("the embedded Postgres keeps running until: python -m sync db stop")
    return 0


def cmd_db_stop(settings: Settings) -> int:
    """Stop the embedded server; with DATABASE_URL set there is nothing to stop but one that
    `db url` kept up before, and DATABASE_URL's own server is never touched."""
    if db.stop_embedded(settings.data_dir):
        print(f"stopped the embedded Postgres in {settings.data_dir}")
    elif settings.database_url:
        print("nothing to stop: DATABASE_URL is set, so commands use that database, and no "
              f"embedded Postgres is running in {settings.data_dir}")  # fmt: skip
    else:
        print(f"the embedded Postgres in {settings.data_dir} was not running")
    return 0
