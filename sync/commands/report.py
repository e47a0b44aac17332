"""`python -m sync report`: write a user's listening report as one self-contained HTML file.

A local command, so the page shows track and artist names; the file name and the
page name the user by alias (user-N) unless SYNC_SHOW_USER_IDS=true.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from sync import db
from sync.analytics.listening import parse_period
from sync.commands import (
    Context,
    Subcommands,
    add_period_argument,
    add_user_argument,
    options_from,
    resolve_user,
)
from sync.config import Settings
from sync.errors import UserError
from sync.names import alias
from sync.reports.data import load_report
from sync.reports.html import render_report
from sync.statuses import UserStatus
from sync.store import users as user_store
from sync.store.users import UserRef

log = logging.getLogger(__name__)


def add_parser(sub: Subcommands) -> None:
    rep = sub.add_parser("report", help="write a listening report as one HTML file")
    add_user_argument(rep, "Spotify user id or alias (default: the only user)")
    add_period_argument(rep)
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
    rep.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    return cmd_report(ctx.settings, options_from(ReportOptions, args))


@dataclass(frozen=True)
class ReportOptions:
    """`report`'s flags (each field is its flag's dest)."""

    period: str = "4w"
    user: str | None = None
    out: str | None = None
    out_dir: str = "."
    all: bool = False
    open: bool = False
    images: bool = False


def default_name(label: str, period_key: str) -> str:
    """report-<alias>-<period>.html, safe as a file name whatever the label holds."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip(".") or "user"
    return f"report-{safe}-{period_key}.html"


def open_in_browser(url: str, browser_open: Callable[[str], bool] | None = None) -> bool:
    """Show the page with `browser_open` (webbrowser.open by default); False when no browser
    opens. On Linux without a display webbrowser is not tried: it would fall back to a
    console browser taking over the terminal."""
    if browser_open is None:
        if sys.platform not in ("darwin", "win32") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            return False
        browser_open = webbrowser.open
    try:
        return bool(browser_open(url))
    except (webbrowser.Error, OSError) as exc:
        log.debug("opening %s failed: %s", url, exc)
        return False


def write_report(
    conn: psycopg.Connection,
    user: UserRef,
    period_key: str,
    label: str,
    path: Path,
    *,
    images: bool = False,
    now: datetime | None = None,
) -> None:
    """Render the user's report for the period and write it to path (folders made)."""
    page = render_report(load_report(conn, user, period_key, label, images=images, now=now))
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = page.encode("utf-8")
    path.write_bytes(encoded)
    log.info("report for %s written: %d bytes", label, len(encoded))


def cmd_report(
    settings: Settings,
    flags: ReportOptions,
    now: datetime | None = None,
    *,
    opener: Callable[[str], bool] | None = None,
) -> int:
    """Write the report(s), print each path; --open shows the single report in a browser
    (`opener` stands in for webbrowser.open), or says to open the file's URL by hand."""
    period_key = parse_period(flags.period)
    if flags.all and (flags.user or flags.out):
        raise UserError("--all writes one file per user into --out-dir: drop --user and --out")
    if flags.images:
        print("note: --images: viewing the report loads album art from Spotify's image servers")
    written: list[Path] = []
    with db.open_database(settings) as conn:
        users: list[UserRef]
        if flags.all:
            users = [u for u in user_store.all_users(conn) if u.status != UserStatus.REMOVED]
        else:
            users = [resolve_user(conn, flags.user or None)]
        for user in users:
            label = alias(user.key, user.user_id, settings.show_user_ids)
            path = (
                Path(flags.out)
                if flags.out
                else Path(flags.out_dir) / default_name(label, period_key)
            )
            write_report(conn, user, period_key, label, path, images=flags.images, now=now)
            print(path)
            written.append(path)
    if flags.open and written:
        url = written[0].resolve().as_uri()
        if not open_in_browser(url, opener):
            print(f"no browser could be opened here: open {url} by hand")
    return 0
