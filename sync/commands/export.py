"""`python -m sync export`: a user's history as Spotify's extended streaming history or CSV."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sync import db
from sync.commands import Context, Subcommands, add_user_argument, options_from, resolve_user
from sync.config import Settings
from sync.errors import UserError
from sync.export import FORMATS, ExportResult, export_history
from sync.export.history import NoPlays
from sync.names import alias

log = logging.getLogger(__name__)

SUFFIX = {"spotify": "zip", "csv": "csv"}


def add_parser(sub: Subcommands) -> None:
    exp = sub.add_parser("export", help="write a user's history as Spotify's export (zip) or CSV")
    add_user_argument(exp, "Spotify user id (or alias user-N)", required=True)
    exp.add_argument(
        "--format",
        choices=FORMATS,
        default="spotify",
        help="spotify: extended streaming history, one JSON file a year, zipped "
        "(default); csv: one row per play",
    )
    exp.add_argument(
        "--out",
        metavar="PATH",
        help="file to write (default spotify-history-<user>-<date>.zip or .csv)",
    )
    exp.add_argument(
        "--from",
        dest="date_from",
        metavar="DATE",
        help="first day, YYYY-MM-DD, in the user's time zone",
    )
    exp.add_argument("--to", dest="date_to", metavar="DATE", help="last day, included")
    exp.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_export(ctx.settings, options_from(ExportOptions, args))


@dataclass(frozen=True)
class ExportOptions:
    """`export`'s flags (each field is its flag's dest)."""

    user: str
    format: str = "spotify"
    out: str | None = None
    date_from: str | None = None
    date_to: str | None = None


def default_name(label: str, fmt: str, today: date) -> str:
    """spotify-history-<user>-<date>.zip (or .csv), in the current folder."""
    return f"spotify-history-{label}-{today.isoformat()}.{SUFFIX[fmt]}"


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r} is not a date like 2024-05-06") from None


def period(
    first: date | None, last: date | None, zone: str
) -> tuple[datetime | None, datetime | None]:
    """[since, until) instants of the local days first..last (both included) in `zone`."""
    if first and last and first > last:
        raise UserError(f"--from {first} is after --to {last}")
    tz = ZoneInfo(zone)
    since = datetime.combine(first, datetime.min.time(), tz) if first else None
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz) if last else None
    return since, until


def _period_text(first: date | None, last: date | None, zone: str) -> str:
    if not first and not last:
        return "in the history"
    parts = ([f"from {first}"] if first else []) + ([f"to {last}"] if last else [])
    return f"{' '.join(parts)} ({zone})"


def summary(result: ExportResult, label: str, seconds: float) -> list[str]:
    """Counts only (never a track name): what was written, and what an importer should know."""
    lines = [f"exported {result.plays:,} plays of {label} to {result.path} in {seconds:.1f} s"]
    if result.format == "spotify":
        names = sorted(n.rsplit("/", 1)[-1] for n in result.files)
        files = f"{len(names)} file" + ("s" if len(names) != 1 else "")
        span = names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"
        lines[0] += f": {files}, {span}"
        kinds = ((result.episodes, "podcast episodes"), (result.chapters, "audiobook chapters"))
        spoken = [f"{n:,} {what}" for n, what in kinds if n]
        if spoken:
            lines.append(f"{' and '.join(spoken)} among them")
        if result.estimated:
            lines.append(
                f"ms_played of {result.estimated:,} Web API plays is an estimate (the track's "
                "length, capped by the time since the previous play, as in the analytics)"
            )
        lines.append(
            f"{result.moved:,} plays moved a second later: another play of the same song ends "
            "in the same second, which importers would take for one play (docs/export.md)"
        )
        if result.short:
            lines.append(
                f"{result.short:,} plays last under 30 s ({result.short_estimated:,} of them "
                "estimated): importers skip those by default; `python -m sync import "
                "--min-seconds 0` keeps them"
            )
    return lines


def cmd_export(settings: Settings, flags: ExportOptions, now: datetime | None = None) -> int:
    """Export one user's plays (flags.user) to a file; print what was written."""
    first = _day(flags.date_from, "--from")
    last = _day(flags.date_to, "--to")
    with db.open_database(settings) as conn:
        try:
            user = resolve_user(conn, flags.user)
        finally:
            conn.rollback()
        label = alias(user.key, user.user_id, settings.show_user_ids)
        since, until = period(first, last, user.time_zone)
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        out = (
            Path(flags.out).expanduser()
            if flags.out
            else Path(default_name(label, flags.format, today))
        )
        started = time.perf_counter()
        try:
            result = export_history(conn, user.key, out, fmt=flags.format, since=since, until=until)
        except NoPlays:
            raise UserError(
                f"no plays of {label} {_period_text(first, last, user.time_zone)}: "
                "nothing was written"
            ) from None
    for line in summary(result, label, time.perf_counter() - started):
        print(line)
    return 0
