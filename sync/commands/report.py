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
from datetime import datetime
from pathlib import Path

import psycopg

from sync import db
from sync.analytics.listening import parse_period, pick_user
from sync.config import Settings
from sync.errors import UserError
from sync.names import alias
from sync.reports.data import load_report
from sync.reports.html import render_report
from sync.store import users as user_store
from sync.store.users import UserRef

log = logging.getLogger(__name__)


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
    args: argparse.Namespace,
    settings: Settings,
    now: datetime | None = None,
    *,
    opener: Callable[[str], bool] | None = None,
) -> int:
    """Write the report(s), print each path; --open shows the single report in a browser
    (`opener` stands in for webbrowser.open), or says to open the file's URL by hand."""
    period_key = parse_period(args.period)
    if args.all and (args.user or args.out):
        raise UserError("--all writes one file per user into --out-dir: drop --user and --out")
    if args.images:
        print("note: --images: viewing the report loads album art from Spotify's image servers")
    written: list[Path] = []
    with db.open_database(settings) as conn:
        users: list[UserRef]
        if args.all:
            users = [u for u in user_store.all_users(conn) if u.status != "removed"]
        else:
            users = [pick_user(conn, args.user)]
        for user in users:
            label = alias(user.key, user.user_id, settings.show_user_ids)
            path = (
                Path(args.out) if args.out else Path(args.out_dir) / default_name(label, period_key)
            )
            write_report(conn, user, period_key, label, path, images=args.images, now=now)
            print(path)
            written.append(path)
    if args.open and written:
        url = written[0].resolve().as_uri()
        if not open_in_browser(url, opener):
            print(f"no browser could be opened here: open {url} by hand")
    return 0
