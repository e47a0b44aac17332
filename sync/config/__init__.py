"""Settings from the environment (and a local .env file); the real environment wins."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sync.config.datadir import expand
from sync.config.urlcheck import database_url_problem, unquote
from sync.errors import ConfigError

DEFAULT_API_URL = "https://api.spotify.com/v1"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8888/callback"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    client_id: str | None
    client_secret: str | None
    api_url: str
    accounts_url: str
    redirect_uri: str
    show_user_ids: bool
    summary_details: bool
    data_dir: Path
    in_github_actions: bool
    step_summary_path: str | None
    run_url: str | None
    trigger: str
    # The owner's inbox (sync.notify): GitHub's standard variables and the job's token.
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    repository: str | None = None  # owner/name
    repo_private: bool | None = None  # None: not known (not in Actions)
    notify: bool = True  # SYNC_NOTIFY=off turns the issues off

    def require_spotify_credentials(self) -> None:
        """Spotify credentials matter only once there is a user to sync."""
        missing = [
            name
            for name, value in (
                ("SPOTIFY_CLIENT_ID", self.client_id),
                ("SPOTIFY_CLIENT_SECRET", self.client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set: copy them from your app in the Spotify "
                "developer dashboard into .env (locally) or the repository's Actions secrets"
            )

    def secrets(self) -> list[str]:
        """Values that must never be printed (used by the log/summary scrubber)."""
        values = [self.client_secret, self.client_id, self.github_token]
        if self.database_url:
            values += [self.database_url, url_password(self.database_url)]
        return [v for v in values if v]


def url_password(url: str) -> str | None:
    """The password in a connection URL, or None (also for URLs too broken to parse)."""
    try:
        return urlparse(url).password
    except ValueError:
        match = re.search(r"://[^:/@]*:([^@]+)@", url)
        return match.group(1) if match else None


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL like {default}")
    return value.rstrip("/")


def load_dotenv_file(path: Path | None = None) -> None:
    """Load .env for local use without overriding the real environment."""
    from dotenv import load_dotenv

    load_dotenv(path or Path.cwd() / ".env", override=False)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    in_actions = env.get("GITHUB_ACTIONS", "").lower() == "true"
    database_url = unquote(env.get("DATABASE_URL", "")) or None
    if database_url is None and in_actions:
        raise ConfigError(
            "DATABASE_URL is not set: add a DATABASE_URL secret to the repository "
            "(Settings > Secrets and variables > Actions) with your Postgres connection string"
        )
    problem = database_url_problem(database_url) if database_url else None
    if problem:
        raise ConfigError(problem.message())
    run_url = None
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        run_url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    trigger = env.get("GITHUB_EVENT_NAME") or ("github" if in_actions else "manual")
    return Settings(
        database_url=database_url,
        client_id=unquote(env.get("SPOTIFY_CLIENT_ID", "")) or None,
        client_secret=unquote(env.get("SPOTIFY_CLIENT_SECRET", "")) or None,
        api_url=_url(env, "SPOTIFY_API_URL", DEFAULT_API_URL),
        accounts_url=_url(env, "SPOTIFY_ACCOUNTS_URL", DEFAULT_ACCOUNTS_URL),
        redirect_uri=env.get("SPOTIFY_REDIRECT_URI", "").strip() or DEFAULT_REDIRECT_URI,
        show_user_ids=_bool(env, "SYNC_SHOW_USER_IDS"),
        summary_details=_bool(env, "SYNC_SUMMARY_DETAILS"),
        data_dir=expand(env.get("SYNC_DATA_DIR", "").strip() or ".data"),
        in_github_actions=in_actions,
        step_summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
        run_url=run_url,
        trigger=trigger,
        github_token=env.get("GITHUB_TOKEN", "").strip() or None,
        github_api_url=_url(env, "GITHUB_API_URL", "https://api.github.com"),
        server_url=_url(env, "GITHUB_SERVER_URL", "https://github.com"),
        repository=env.get("GITHUB_REPOSITORY", "").strip() or None,
        repo_private=_bool(env, "REPO_PRIVATE") if env.get("REPO_PRIVATE", "").strip() else None,
        notify=_bool(env, "SYNC_NOTIFY") if env.get("SYNC_NOTIFY", "").strip() else True,
    )
