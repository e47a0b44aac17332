"""`python -m sync login`: sign in with Spotify and store the user's refresh token."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import parse_qs, urlparse

from sync.commands import Context, Subcommands, resolve_user
from sync.config import Settings
from sync.errors import UserError
from sync.job import tokens
from sync.names import alias
from sync.signin.flow import LoginIO, login
from sync.statuses import UserStatus


def add_parser(sub: Subcommands) -> None:
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
    login.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace, ctx: Context) -> int:
    """One of three ways to sign in, by the flag given."""
    io = LoginIO()
    if args.link:
        return cmd_link(args.link, ctx.settings, io)
    if args.redirect_url is not None:
        return cmd_redirect_url(args.redirect_url, ctx.settings, io)
    return cmd_login(ctx.settings, headless=args.headless, io=io)


def _database_label(settings: Settings) -> str:
    if settings.database_url is None:
        return f"the embedded database in {settings.data_dir}/"
    try:
        parsed = urlparse(settings.database_url)
        if parsed.hostname:
            return f"the database at {parsed.hostname}"
        socket_dir = parse_qs(parsed.query).get("host", [""])[0]  # postgresql:///db?host=/dir
        if socket_dir:
            return f"the database at the socket in {socket_dir}"
        return "the DATABASE_URL database"
    except ValueError:
        return "the DATABASE_URL database"


def cmd_login(settings: Settings, *, headless: bool = False, io: LoginIO | None = None) -> int:
    """Sign in here (a browser on this machine, or headless: paste the address back)."""
    io = io or LoginIO()
    result = login(settings, headless=headless, io=io)
    name = alias(result.key, result.user_id, False)
    if result.created:
        io.say(f"Signed in as Spotify user {result.user_id}: added as {name} to "
               f"{_database_label(settings)}.")  # fmt: skip
    else:
        was = ""
        if result.previous_status and result.previous_status != UserStatus.ACTIVE:
            was = f" It was {result.previous_status}"
            was += f" ({result.previous_reason})" if result.previous_reason else ""
            was += " and is active again."
        io.say(f"Signed in again as Spotify user {result.user_id} ({name}): new refresh token "
               f"stored in {_database_label(settings)}.{was}")  # fmt: skip
    expires = tokens.refresh_token_expires_at(result.authorized_at)
    io.say(
        f"Run logs show this user as {name}. Spotify ends this sign-in on {expires:%Y-%m-%d} "
        f"({tokens.REFRESH_TOKEN_LIFETIME_MONTHS} months after authorizing): run python -m "
        "sync login again before then."
    )
    if result.embedded:
        io.say(
            "Note: DATABASE_URL is not set, so the user is stored on this machine only; "
            "GitHub Actions cannot see it. Put your database's connection string in .env as "
            "DATABASE_URL and run python -m sync login again to sync from Actions."
        )
    return 0


def _show_ids(settings: Settings) -> bool:
    """Spotify ids in output only with SYNC_SHOW_USER_IDS (run logs may be public)."""
    return settings.show_user_ids


def cmd_link(who: str, settings: Settings, io: LoginIO) -> int:
    """`login --link USER|new`: print a sign-in link to open on any device."""
    from sync import db
    from sync.signin.link import sign_in_link

    settings.require_spotify_credentials()
    if who.strip().lower() == "new":
        subject, name = None, None
    else:
        with db.open_database(settings) as conn:
            user = resolve_user(conn, who.strip())
        if user.status == UserStatus.REMOVED:
            raise UserError(
                f"{alias(user.key, user.user_id, _show_ids(settings))} was removed: to sign "
                "them in again, make a link for a new person (python -m sync login --link new)"
            )
        subject, name = user.key, alias(user.key, user.user_id, _show_ids(settings))
    url, expires = sign_in_link(settings, subject, io.now())
    account = f"{name}'s Spotify account" if name else "the new person's Spotify account"
    io.say(f"Sign-in link for {name or 'a new person'}, valid until {expires:%Y-%m-%d %H:%M} UTC:")
    io.say(f"  {url}")
    io.say("On any device (a phone is fine):")
    io.say(f"  1. Open the link, sign in with {account} and choose Agree.")
    io.say(
        f"  2. The browser then goes to {settings.redirect_uri}?code=... and that page does "
        "not load there: expected. Copy that whole address."
    )
    io.say(
        "  3. On GitHub open the repository's Actions > sync > Run workflow, paste the "
        "address into sign_in and run it."
    )
    io.say("     Or: gh workflow run sync.yml -f sign_in='ADDRESS'")
    io.say("     Or on a computer with this set-up: python -m sync login --redirect-url 'ADDRESS'")
    io.say("  The address works once and only for a few minutes: paste it soon.")
    return 0


def cmd_redirect_url(value: str, settings: Settings, io: LoginIO) -> int:
    """`login --redirect-url URL|-`: finish a sign-in link's sign-in from its landing address."""
    from sync.signin.link import mask_address, redeem

    if value == "-":
        value = sys.stdin.readline()
        if not value.strip():
            raise UserError(
                "--redirect-url -: nothing on stdin; pass the address the browser was sent to"
            )
    if settings.in_github_actions:  # mask first, then parse
        mask_address(value, io.say)
    result = redeem(settings, value, io.now())
    name = alias(result.key, result.user_id, _show_ids(settings))
    expires = tokens.refresh_token_expires_at(result.authorized_at)
    if result.created:
        what = f"Signed in {name}: added as a new user"
    else:
        was = result.previous_status
        what = f"Signed in {name} again"
        what += f" (was {was}, active again)" if was != UserStatus.ACTIVE else ""
    where = "the database" if settings.in_github_actions else _database_label(settings)
    io.say(
        f"{what}; new refresh token stored in {where}. Spotify ends this sign-in on "
        f"{expires:%Y-%m-%d}."
    )
    return 0
