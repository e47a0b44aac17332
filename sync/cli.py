"""Command line: parse arguments, load settings, configure logging, run the command's handler.

Each command adds its own flags (`add_parser` in its sync/commands module, listed in
sync.commands.COMMANDS); this file knows only the flags every command shares (-v, --version)
and builds the one Context every handler gets.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sync import __version__
from sync.commands import COMMANDS, Context
from sync.config import load_dotenv_file, load_settings
from sync.errors import UserError
from sync.redact import RedactingFilter, Redactor

log = logging.getLogger("sync")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UserError(f"{self.prog}: {message} (see --help)")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for argv: only the module of the command argv names is imported to add its
    flags (each command stays quick to start); every one when argv names none we know, so
    the top-level --help and an unknown command's error list them all."""
    parser = _Parser(
        prog="python -m sync",
        description="Keep your Spotify listening history in your own Postgres.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail in the log")
    parser.add_argument(
        "--version", action="version", version=f"spotify-history-sync {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    named = _command_named(argv)
    for name, module in COMMANDS.items():
        if named in (None, name):
            importlib.import_module(f"sync.commands.{module}").add_parser(sub)
    _verbose_everywhere(parser)
    return parser


def _command_named(argv: Sequence[str] | None) -> str | None:
    """The command argv names: its first word that is not an option (the options before a
    command take no value), if it is one of COMMANDS."""
    first = next((word for word in argv or () if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept -v after the command too (python -m sync run -v), at every level."""
    for action in parser._actions:  # argparse offers no public walk over subcommands
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                child.add_argument(
                    "-v",
                    "--verbose",
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help="more detail in the log",
                )
                _verbose_everywhere(child)


def configure_logging(verbose: bool, redactor: Redactor) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("sync").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    redactor = Redactor()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_dotenv_file()  # first: the .env, then the command's module and its packages
        args = build_parser(argv).parse_args(argv)
        ctx = Context(redactor)
        if not getattr(args, "own_settings", False):  # doctor and setup read their own
            ctx.settings = load_settings()
            redactor.github_actions = ctx.settings.in_github_actions
            for secret in ctx.settings.secrets():
                redactor.protect(secret)
        configure_logging(args.verbose, redactor)
        return args.handler(args, ctx)
    except UserError as exc:
        print(f"error: {redactor.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
