"""Command line: parse arguments, load settings, configure logging, dispatch to sync.commands."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence

from sync import __version__
from sync.config import Settings, load_dotenv_file, load_settings
from sync.errors import UserError
from sync.redact import RedactingFilter, Redactor

log = logging.getLogger("sync")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _seconds(text: str) -> float:
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UserError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
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

    run = sub.add_parser("run", help="sync recently played tracks for every stored user")
    run.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="ID",
        help="sync only this user: Spotify id or alias user-N (repeatable)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="fetch and report, but write no plays and no run record",
    )
    run.add_argument(
        "--max-tracks",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="most plays to read per user (default 1000)",
    )
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="users synced in parallel (default 4)",
    )
    run.add_argument(
        "--time-budget",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="end the run within this long, waits included (e.g. 600, 10m)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    run.set_defaults(func=_lazy("run", "cmd_run"))

    migrate = sub.add_parser("migrate", help="apply pending SQL migrations from sql/")
    migrate.set_defaults(func=_lazy("migrate", "cmd_migrate"))

    users = sub.add_parser(
        "users",
        help="list users: status, last sync, plays, token expiry",
        description="without ACTION: list the users (status, last sync, plays, token expiry)",
    )
    users.set_defaults(func=_lazy("users", "cmd_users"))
    users_sub = users.add_subparsers(
        dest="users_command", metavar="[ACTION]", parser_class=_Parser
    )  # optional: `users` alone lists them
    tz = users_sub.add_parser(
        "set-timezone", help="set a user's IANA time zone and rebuild analytics"
    )
    tz.add_argument("user", metavar="USER", help="Spotify user id (or alias user-N)")
    tz.add_argument("zone", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin")
    tz.set_defaults(func=_lazy("users", "cmd_set_timezone"))
    remove = users_sub.add_parser("remove", help="remove a user (and their plays)")
    remove.add_argument("user", metavar="USER", help="Spotify user id (or alias user-N)")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.add_argument("--keep-history", action="store_true", help="keep the user's plays")
    remove.set_defaults(func=_lazy("users", "cmd_remove_user"))

    login = sub.add_parser("login", help="sign in with Spotify and store the user's refresh token")
    login_how = login.add_mutually_exclusive_group()
    login_how.add_argument(
        "--headless",
        action="store_true",
        help="no browser here: print the URL, paste the redirected URL back",
    )
    login_how.add_argument(
        "--link",
        metavar="USER",
        help="print a sign-in link to open on any device, for USER (id or user-N) or 'new'",
    )
    login_how.add_argument(
        "--redirect-url",
        metavar="URL",
        help="finish a sign-in link's sign-in: the address the browser landed on ('-': stdin)",
    )
    login.set_defaults(func=_lazy("login", "cmd_login"))

    imp = sub.add_parser("import", help="import Spotify's data export (zip, folder or files)")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="export .zip, folder or .json files")
    imp.add_argument(
        "--user",
        required=True,
        metavar="ID",
        help="Spotify user id (or alias user-N) to import for",
    )
    imp.add_argument(
        "--min-seconds",
        type=float,
        default=30,
        metavar="S",
        help="skip plays shorter than this (default 30, like the Web API)",
    )
    imp.add_argument(
        "--include-podcasts",
        action="store_true",
        help=argparse.SUPPRESS,  # no longer needed: episodes are kept apart (issue 18)
    )
    imp.add_argument(
        "--include-video",
        action="store_true",
        help="also read Streaming_History_Video files (skipped by default)",
    )
    imp.add_argument(
        "--exclude-show",
        action="append",
        default=[],
        metavar="NAME",
        help="account data (old StreamingHistory<n>.json mixes in episodes): skip plays whose "
        "artistName is this show "
        "(exact, any case; repeatable)",
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imp.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="processes parsing files in parallel (default: CPUs, at most 4)",
    )
    imp.set_defaults(func=_lazy("import_export", "cmd_import"))

    doctor = sub.add_parser("doctor", help="check settings, database, Spotify app, users, schedule")
    doctor.set_defaults(func=_lazy("doctor", "cmd_doctor"))

    agg = sub.add_parser("aggregate", help="rebuild the analytics tables from the history")
    agg.add_argument("--user", action="append", default=[], metavar="ID", help="only this user")
    agg.add_argument("--full", action="store_true", help="rebuild everything from scratch")
    agg.set_defaults(func=_lazy("aggregate", "cmd_aggregate"))

    setup = sub.add_parser("setup", help="set everything up after the clone; safe to run again")
    setup.add_argument("--client-id", metavar="ID", help="the Spotify app's client id")
    setup.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="the app's client secret (better: env SPOTIFY_CLIENT_SECRET, off the command line)",
    )
    setup.add_argument(
        "--database-url",
        metavar="URL",
        help="Postgres connection string (or env DATABASE_URL); 'embedded' or '' for the "
        "embedded database",
    )
    setup.add_argument("--yes", action="store_true", help="accept every default, gh steps included")
    setup.add_argument(
        "--no-github", action="store_true", help="print the GitHub steps, don't use gh"
    )
    setup.add_argument("--headless", action="store_true", help="sign in without a browser here")
    setup.add_argument("--skip-login", action="store_true", help="don't sign an account in now")
    setup.add_argument(
        "--sign-in", action="store_true", help="sign an account in although every one works"
    )
    setup.add_argument(
        "--replace-secrets", action="store_true", help="set the repository secrets again"
    )
    setup.add_argument(
        "--new-run", action="store_true", help="start a run although the latest one succeeded"
    )
    setup.add_argument(
        "--wait",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the first GitHub run (default 10m)",
    )
    setup.set_defaults(func=_lazy("setup", "cmd_setup"))

    demo = sub.add_parser(
        "demo", help="fill the embedded database with a made-up year of listening, then show it"
    )
    demo.add_argument(
        "--yes", action="store_true", help="also into the database DATABASE_URL names"
    )
    demo.add_argument("--out", metavar="FILE", help="report file (default report-<user>-12m.html)")
    demo.set_defaults(func=_lazy("demo", "cmd_demo"))

    dbp = sub.add_parser("db", help="the embedded database: connection string, stop")
    db_sub = dbp.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_sub.required = True
    db_sub.add_parser("url", help="print its connection string; keep it running").set_defaults(
        func=_lazy("db", "cmd_db_url")
    )
    db_sub.add_parser("stop", help="stop it (after db url)").set_defaults(
        func=_lazy("db", "cmd_db_stop")
    )

    stats = sub.add_parser("stats", help="print listening statistics in the terminal")
    stats.add_argument("--user", metavar="ID", help="Spotify user id (default: the only user)")
    stats.add_argument(
        "--period",
        default="4w",
        metavar="P",
        help="7d, 4w (default), 6m, 12m or 1y, all, or a year like 2025",
    )
    stats.set_defaults(func=_lazy("stats", "cmd_stats"))

    rep = sub.add_parser("report", help="write a listening report as one HTML file")
    rep.add_argument(
        "--user", metavar="ID", help="Spotify user id or alias (default: the only user)"
    )
    rep.add_argument(
        "--period",
        default="4w",
        metavar="P",
        help="7d, 4w (default), 6m, 12m or 1y, all, or a year like 2025",
    )
    rep.add_argument(
        "--out", metavar="FILE", help="file to write (default report-<user>-<period>.html)"
    )
    rep.add_argument("--out-dir", default=".", metavar="DIR", help="folder for default file names")
    rep.add_argument("--all", action="store_true", help="one report per user, into --out-dir")
    rep.add_argument("--open", action="store_true", help="open the report in the browser")
    rep.add_argument(
        "--images",
        action="store_true",
        help="show album art (viewing then contacts Spotify's image servers)",
    )
    rep.set_defaults(func=_lazy("report", "cmd_report"))
    _verbose_everywhere(parser)
    return parser  # fmt: skip


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


def _lazy(module: str, name: str):
    """Import a command's module only when it runs, so every command stays quick to start."""

    def call(args: argparse.Namespace, settings: Settings | None, *extra: object) -> int:
        import importlib

        handler = getattr(importlib.import_module(f"sync.commands.{module}"), name)
        return handler(args, settings, *extra)

    return call


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
    try:
        args = build_parser().parse_args(argv)
        load_dotenv_file()
        if args.command == "doctor":  # explains malformed settings itself, one line each
            configure_logging(args.verbose, redactor)
            return args.func(args, None)
        if args.command == "setup":  # asks for the settings itself, protecting each answer
            configure_logging(args.verbose, redactor)
            return args.func(args, None, redactor)
        settings = load_settings()
        redactor.github_actions = settings.in_github_actions
        for secret in settings.secrets():
            redactor.protect(secret)
        configure_logging(args.verbose, redactor)
        if args.command == "run":  # the run protects each token it sees in the same redactor
            return args.func(args, settings, redactor)
        return args.func(args, settings)
    except UserError as exc:
        print(f"error: {redactor.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
