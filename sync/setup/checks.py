"""The checks setup makes on each answer, built from doctor's own checks."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from sync import db
from sync.config import Settings
from sync.doctor.checkup import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    check_database,
    check_settings,
    check_spotify,
)

log = logging.getLogger(__name__)

WORKFLOW_FILE = Path(__file__).resolve().parent.parent.parent / ".github" / "workflows" / "sync.yml"
_CRON = re.compile(r"""^\s*-?\s*cron:\s*["']?([^"'#\n]+?)["']?\s*(?:#.*)?$""", re.MULTILINE)
_HOURLY = re.compile(r"^(\d{1,2}) \* \* \* \*$")


def local_env(env: Mapping[str, str], **values: str | None) -> dict[str, str]:
    """env as on this machine (not in Actions), with these values set (None: removed)."""
    out = {k: v for k, v in env.items() if k != "GITHUB_ACTIONS"}
    for key, value in values.items():
        out.pop(key, None)
        if value is not None:
            out[key] = value
    return out


def spotify_checks(env: Mapping[str, str], client_id: str, client_secret: str) -> list[Check]:
    """The id and secret look like Spotify's, and a client credentials request accepts them."""
    local = local_env(env, DATABASE_URL=None, SPOTIFY_CLIENT_ID=client_id,
                       SPOTIFY_CLIENT_SECRET=client_secret)  # fmt: skip
    found, settings = check_settings(local)
    names = ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "settings")
    shown = [c for c in found if c.name in names and c.status != OK]
    if settings is None:
        return shown
    return [*shown, check_spotify(settings)]


def spotify_offline(check: Check) -> bool:
    """Whether a failed Spotify check is the network's (doctor's TemporaryError wording)."""
    return check.name == "Spotify app" and check.detail.startswith("could not reach")


def database_checks(
    env: Mapping[str, str],
    url: str | None,
    *,
    connect: Callable[[str], psycopg.Connection] = db.connect,
    resolve: Callable[..., list] = socket.getaddrinfo,
) -> list[Check]:
    """The connection string: well formed, reachable, new enough, and reachable from GitHub."""
    found, settings = check_settings(local_env(env, DATABASE_URL=url))
    shown = [c for c in found if c.name in ("DATABASE_URL", "settings")]
    if settings is None or settings.database_url is None or any(c.status == FAIL for c in shown):
        return shown  # the embedded database: nothing to reach yet (migrate starts it)
    reached, conn = check_database(settings, connect)
    if conn is not None:
        conn.close()
    shown += [c for c in reached if c.name == "database"]
    if conn is not None:
        shown.append(check_reachable_from_github(settings, resolve))
    return shown


def check_reachable_from_github(
    settings: Settings, resolve: Callable[..., list] = socket.getaddrinfo
) -> Check:
    """GitHub's runners reach only public IPv4 addresses: IPv6-only and private hosts fail there."""
    name = "database from GitHub Actions"
    parsed = urlparse(settings.database_url or "")
    host = parsed.hostname
    if not host or host.startswith("/"):
        return Check(WARN, name, "a local socket: GitHub's runners cannot reach it",
                     "use the database's internet address")  # fmt: skip
    try:
        found = {info[4][0] for info in resolve(host, parsed.port or 5432, 0, socket.SOCK_STREAM)}
    except OSError as exc:
        return Check(SKIP, name, f"{host} does not resolve here ({exc})")
    addresses = [ipaddress.ip_address(str(a).split("%")[0]) for a in found]
    if any(a.version == 4 and a.is_global for a in addresses):
        return Check(OK, name, f"{host} has a public IPv4 address")
    if addresses and all(a.version == 6 for a in addresses):
        return Check(
            WARN,
            name,
            f"{host} has IPv6 addresses only: GitHub's runners have no IPv6, so runs there "
            "cannot connect (Supabase's direct connection db.<project>.supabase.co is IPv6-only)",
            "use Supabase's Session pooler connection string (Connect > Session pooler, "
            "port 5432), which works over IPv4",
        )
    return Check(WARN, name, f"{host} is on this machine or a private network: GitHub's "
                 "runners cannot reach it", "use a database reachable from the internet, "
                 "e.g. Supabase's Session pooler connection string")  # fmt: skip


def workflow_cron(path: Path = WORKFLOW_FILE) -> str | None:
    """The first schedule line of the workflow, or None."""
    try:
        match = _CRON.search(path.read_text())
    except OSError:
        return None
    return match.group(1).strip() if match else None


def next_scheduled(cron: str, now: datetime) -> datetime | None:
    """The next time an hourly cron line ("M * * * *", UTC) fires; None for other shapes."""
    match = _HOURLY.match(cron.strip())
    if not match or int(match.group(1)) > 59:
        return None
    at = now.replace(minute=int(match.group(1)), second=0, microsecond=0)
    return at if at > now else at + timedelta(hours=1)
