"""`python -m sync export`: a user's history as Spotify's extended streaming history or CSV.

`--all --out-dir DIR` writes every user's, one file each (the weekly backup workflow,
.github/workflows/backup.yml, runs it).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from sync import db
from sync.commands import Context, Subcommands, add_user_argument, options_from, resolve_user
from sync.config import Settings
from sync.errors import UserError
from sync.export import FORMATS, ExportResult, export_history
from sync.export.history import NoPlays
from sync.names import alias
from sync.statuses import UserStatus
from sync.store import users as user_store
from sync.store.users import UserRef

log = logging.getLogger(__name__)

SUFFIX = {"spotify": "zip", "csv": "csv"}


def add_parser(sub: Subcommands) -> None:
    exp = sub.add_parser("export", help="write a user's history as Spotify's export (zip) or CSV")
    add_user_argument(exp, "Spotify user id (or alias user-N); or --all")
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
        "--out-dir",
        metavar="DIR",
        help="folder for the default file names (made if missing; default: here)",
    )
    exp.add_argument(
        "--all",
        action="store_true",
        help="every user, one file each into --out-dir; users without plays are skipped",
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

    user: str | None = None
    format: str = "spotify"
    out: str | None = None
    out_dir: str | None = None
    all: bool = False
    date_from: str | None = None
    date_to: str | None = None


def default_name(label: str, fmt: str, today: date) -> str:
    """spotify-history-<user>-<date>.zip (or .csv), safe as a file name whatever the label
    holds (a Spotify id shown with SYNC_SHOW_USER_IDS may hold any character)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip(".") or "user"
    return f"spotify-history-{safe}-{today.isoformat()}.{SUFFIX[fmt]}"


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


def _check_flags(flags: ExportOptions) -> None:
    if flags.all and (flags.user or flags.out):
        raise UserError("--all writes one file per user into --out-dir: drop --user and --out")
    if not flags.all and not flags.user:
        raise UserError("name the user to export (--user ID), or export everyone (--all)")
    if flags.out and flags.out_dir:
        raise UserError("--out names the file itself: drop --out-dir")


def _out_dir(text: str | None) -> Path:
    """The folder for default file names, made if missing (a backup's fresh folder)."""
    folder = Path(text or ".").expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot make the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    return folder


def cmd_export(settings: Settings, flags: ExportOptions, now: datetime | None = None) -> int:
    """Export one user's plays (flags.user) to a file, or every user's (flags.all) into a
    folder; print what was written, users by alias unless SYNC_SHOW_USER_IDS allows ids."""
    _check_flags(flags)
    first = _day(flags.date_from, "--from")
    last = _day(flags.date_to, "--to")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    with db.open_database(settings) as conn:
        if flags.all:
            return _export_all(conn, settings, flags, first, last, today)
        try:
            user = resolve_user(conn, flags.user)
        finally:
            conn.rollback()
        label = alias(user.key, user.user_id, settings.show_user_ids)
        since, until = period(first, last, user.time_zone)
        out = (
            Path(flags.out).expanduser()
            if flags.out
            else _out_dir(flags.out_dir) / default_name(label, flags.format, today)
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


def _export_all(
    conn: psycopg.Connection,
    settings: Settings,
    flags: ExportOptions,
    first: date | None,
    last: date | None,
    today: date,
) -> int:
    """Every stored user (removed ones whose history was kept too; not the made-up demo
    user), one file each; a user without plays in the period is skipped and counted."""
    try:
        users: list[UserRef] = [
            u for u in user_store.all_users(conn) if u.status != UserStatus.DEMO
        ]
    finally:
        conn.rollback()  # idle again: each export takes its own read-only snapshot
    folder = _out_dir(flags.out_dir)
    started = time.perf_counter()
    written, plays, skipped = 0, 0, []
    for user in users:
        label = alias(user.key, user.user_id, settings.show_user_ids)
        since, until = period(first, last, user.time_zone)
        out = folder / default_name(label, flags.format, today)
        began = time.perf_counter()
        try:
            result = export_history(conn, user.key, out, fmt=flags.format, since=since, until=until)
        except NoPlays:
            skipped.append(label)
            print(f"skipped {label}: no plays {_period_text(first, last, user.time_zone)}")
            continue
        for line in summary(result, label, time.perf_counter() - began):
            print(line)
        written += 1
        plays += result.plays
    print(all_summary(written, plays, skipped, folder, time.perf_counter() - started))
    return 0


def all_summary(written: int, plays: int, skipped: list[str], folder: Path, seconds: float) -> str:
    """The last line of `export --all`: files, plays and skipped users, by label only."""
    line = (
        f"exported {written} user" + ("s" if written != 1 else "") + f" ({plays:,} plays) "
        f"to {folder} in {seconds:.1f} s"
    )
    if skipped:
        line += f"; {len(skipped)} skipped, no plays: {', '.join(skipped)}"
    return line
