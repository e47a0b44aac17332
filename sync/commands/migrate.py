"""`python -m sync migrate`: apply what sql/ holds that the database lacks."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sync import db
from sync.commands import Context, Subcommands
from sync.config import Settings
from sync.db import schema
from sync.text import plural

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    migrate = sub.add_parser("migrate", help="apply pending SQL migrations from sql/")
    migrate.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        metavar="NAME",
        help="also apply an opt-in file of sql/optional/: app-access",
    )
    migrate.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_migrate(ctx.settings, args.with_)


def cmd_migrate(settings: Settings, with_: Sequence[str] = ()) -> int:
    extras = list(dict.fromkeys(with_))  # --with NAME, in order
    for name in extras:
        schema.optional_file(name)  # an unknown name stops here, before connecting
    with db.open_database(settings, migrate=False) as conn:
        applied = schema.migrate(conn)
        applied += [schema.apply_optional(conn, name) for name in extras]
    print(f"applied {plural(len(applied), 'migration')}: {', '.join(applied)}" if applied
          else "schema is up to date")  # fmt: skip
    return 0
