"""`python -m sync doctor`: what is wrong with a set-up, one line per check, with the fix."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from sync.commands import Context, Subcommands
from sync.doctor.checkup import run_doctor


def add_parser(sub: Subcommands) -> None:
    doctor = sub.add_parser("doctor", help="check settings, database, Spotify app, users, schedule")
    # explains malformed settings itself, one line each: the command line loads none
    doctor.set_defaults(handler=_handler, own_settings=True)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_doctor(ctx.out)


def cmd_doctor(out: TextIO) -> int:
    """Settings are read from the environment here: doctor must explain malformed ones too."""
    return run_doctor(os.environ, out)
