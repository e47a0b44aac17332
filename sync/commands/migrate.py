"""`python -m sync migrate`: apply what sql/ holds that the database lacks."""

from __future__ import annotations

import argparse
import logging

from sync import db
from sync.config import Settings
from sync.db import schema
from sync.text import plural

log = logging.getLogger(__name__)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    extras = list(dict.fromkeys(getattr(args, "with_", None) or []))  # --with NAME, in order
    for name in extras:
        schema.optional_file(name)  # an unknown name stops here, before connecting
    with db.open_database(settings, migrate=False) as conn:
        applied = schema.migrate(conn)
        applied += [schema.apply_optional(conn, name) for name in extras]
    print(f"applied {plural(len(applied), 'migration')}: {', '.join(applied)}" if applied
          else "schema is up to date")  # fmt: skip
    return 0
