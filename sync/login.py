"""`sync login` (authorization code flow) and `sync users remove`. Not built yet."""

from __future__ import annotations

import argparse

from sync.config import Settings
from sync.errors import UserError


def cmd_login(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("login is not available yet")


def cmd_remove_user(args: argparse.Namespace, settings: Settings) -> int:
    raise UserError("users remove is not available yet")
