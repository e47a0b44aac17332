"""`python -m sync migrate`: apply what sql/ holds that the database lacks."""

from __future__ import annotations

import argparse
import logging

from sync import db
from sync.commands import Context, Subcommands
from sync.config import Settings
from sync.db import schema
from sync.text import plural

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    migrate = sub.add_parser("migrate", help="apply pending SQL migrations from sql/")
    migrate.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_migrate(ctx.settings)


def cmd_migrate(settings: Settings) -> int:
    with db.open_database(settings, migrate=False) as conn:
        applied = schema.migrate(conn)
    print(f"applied {plural(len(applied), 'migration')}: {', '.join(applied)}" if applied
          else "schema is up to date")  # fmt: skip
    return 0
