"""`sync stats`: listening statistics in the terminal. Not built yet."""

from __future__ import annotations

import argparse

from sync.config import Settings
from sync.errors import UserError


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("stats is not available yet")
