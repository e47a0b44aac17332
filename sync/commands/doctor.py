"""`python -m sync doctor`: what is wrong with a set-up, one line per check, with the fix."""

from __future__ import annotations

import argparse
import os
import sys

from sync.config import Settings
from sync.doctor.checkup import run_doctor


def cmd_doctor(args: argparse.Namespace, settings: Settings | None) -> int:
    """Settings are re-read from the environment: doctor must explain malformed ones too."""
    return run_doctor(os.environ, sys.stdout)
