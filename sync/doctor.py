"""`sync doctor`: explain what is wrong with a set-up. Not built yet."""

from __future__ import annotations

import argparse

from sync.config import Settings
from sync.errors import UserError


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("doctor is not available yet")
