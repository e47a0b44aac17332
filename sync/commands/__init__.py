"""Commands: one module per command (group), each owning its flags.

Every module listed in COMMANDS has `add_parser(sub)`: it adds its sub-parser and sets
`handler`, a small adapter from the parsed flags to the module's typed function, called
with the flags and one Context. sync/cli.py imports only the module of the command being
run (so each command stays quick to start), every one for the top-level --help.

A new command: a module here with `add_parser(sub)` (see migrate.py, the smallest), and
one line in COMMANDS.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from sync.errors import UserError

if TYPE_CHECKING:  # the real imports happen when a command runs: cli.py imports this early
    import psycopg

    from sync.config import Settings
    from sync.redact import Redactor
    from sync.store.users import UserRef

# command name -> its module in sync/commands, in the order --help lists them
COMMANDS = {
    "run": "run",
    "migrate": "migrate",
    "users": "users",
    "login": "login",
    "import": "import_export",
    "export": "export",
    "doctor": "doctor",
    "aggregate": "aggregate",
    "setup": "setup",
    "demo": "demo",
    "db": "db",
    "stats": "stats",
    "report": "report",
}

Subcommands = argparse._SubParsersAction  # what add_subparsers() returns (no public name)
T = TypeVar("T")


@dataclass
class Context:
    """What a handler gets besides its flags, the same for every command.

    settings is None for a command registered with `own_settings=True` (doctor, setup):
    those read the environment themselves, to explain or ask for what is wrong in it.
    Every secret in settings is protected in redactor before the handler runs.
    """

    redactor: Redactor
    settings: Settings | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)


def options_from(cls: type[T], args: argparse.Namespace) -> T:
    """A command's options dataclass from the parsed flags: each field is a flag's dest."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})  # type: ignore[arg-type]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def seconds(text: str) -> float:
    """Accept 300, 300s, 5m or 1h."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    factor = units.get(raw[-1:])
    number = raw[:-1] if factor else raw
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 300, 90s or 10m"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the time budget must be a positive number")
    return value


def add_user_argument(
    parser: argparse.ArgumentParser, help: str, *, many: bool = False, required: bool = False
) -> None:
    """`--user ID`, the one way a command takes the user(s) it works on (see resolve_user).

    many: repeatable, a list (empty: every user); else one value or None.
    """
    extra: dict[str, Any] = {"action": "append", "default": []} if many else {}
    parser.add_argument("--user", metavar="ID", required=required, help=help, **extra)


def add_period_argument(parser: argparse.ArgumentParser) -> None:
    """`--period P`, as stats and report read it (sync.analytics.listening.parse_period)."""
    parser.add_argument(
        "--period",
        default="4w",
        metavar="P",
        help="7d, 4w (default), 6m, 12m or 1y, all, or a year like 2025",
    )


def resolve_user(conn: psycopg.Connection, text: str | None) -> UserRef:
    """The user --user (or USER) names, by Spotify id or alias user-N; without one, the only
    stored user. UserError naming the fix when there is none (removed users are found too:
    each command decides what it may do with one)."""
    from sync.store import users as user_store

    if text is not None:
        return user_store.resolve_user(conn, text)
    users = user_store.all_users(conn)
    if not users:
        raise UserError("no users yet: run python -m sync login to add one")
    if len(users) > 1:
        raise UserError(
            f"{len(users)} users stored: pass --user ID (python -m sync users lists them)"
        )
    return users[0]


def resolve_users(conn: psycopg.Connection, texts: Sequence[str]) -> list[UserRef]:
    """The users a repeatable --user names, by the same rule; empty: every stored user."""
    from sync.store import users as user_store

    if not texts:
        return user_store.all_users(conn)
    return [resolve_user(conn, text) for text in texts]
