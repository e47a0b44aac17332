"""`sync import`: Spotify data export backfill. Not built yet."""

from __future__ import annotations

import argparse

from sync.config import Settings
from sync.errors import UserError


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("import is not available yet")
