"""Settings from the environment and .env: defaults, validation, secrets, run URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.config import (
    DEFAULT_ACCOUNTS_URL,
    DEFAULT_API_URL,
    load_dotenv_file,
    load_settings,
)
from sync.errors import ConfigError, UserError


def test_defaults_with_an_empty_environment():
    s = load_settings({})
    assert s.database_url is None  # embedded Postgres under .data/
    assert s.data_dir == Path(".data")
    assert (s.api_url, s.accounts_url) == (DEFAULT_API_URL, DEFAULT_ACCOUNTS_URL)
    assert s.show_user_ids is False
    assert s.in_github_actions is False
    assert (s.run_url, s.step_summary_path, s.trigger) == (None, None, "manual")


def test_base_urls_can_point_elsewhere():
    s = load_settings({"SPOTIFY_API_URL": "http://127.0.0.1:9000/v1/",
                       "SPOTIFY_ACCOUNTS_URL": "http://127.0.0.1:9000"})  # fmt: skip
    assert s.api_url == "http://127.0.0.1:9000/v1"
    assert s.accounts_url == "http://127.0.0.1:9000"


def test_database_url_required_in_github_actions():
    with pytest.raises(ConfigError, match="DATABASE_URL secret"):
        load_settings({"GITHUB_ACTIONS": "true"})


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "just-a-host", "postgresql://u:p@[oops/db", "postgres://u@h:x/db"]
)
def test_malformed_database_url(url):
    with pytest.raises(ConfigError, match="DATABASE_URL is not a valid connection string"):
        load_settings({"DATABASE_URL": url})


def test_postgres_and_postgresql_schemes_accepted():
    for url in ("postgres://u:p@h:6543/postgres", "postgresql://u@h/db?sslmode=require"):
        assert load_settings({"DATABASE_URL": url}).database_url == url


def test_spotify_credentials_checked_only_on_demand():
    s = load_settings({"SPOTIFY_CLIENT_ID": "id-only"})  # loading never requires them
    with pytest.raises(ConfigError, match="SPOTIFY_CLIENT_SECRET") as err:
        s.require_spotify_credentials()
    assert "SPOTIFY_CLIENT_ID" not in str(err.value)
    load_settings(
        {"SPOTIFY_CLIENT_ID": "i", "SPOTIFY_CLIENT_SECRET": "s"}
    ).require_spotify_credentials()


def test_config_errors_are_user_errors_with_exit_2():
    assert issubclass(ConfigError, UserError) and ConfigError.exit_code == 2


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("", False), ("off", False)],
)
def test_show_user_ids_boolean(raw, value):
    assert load_settings({"SYNC_SHOW_USER_IDS": raw}).show_user_ids is value


def test_secrets_cover_client_secret_database_url_and_password():
    s = load_settings({"DATABASE_URL": "postgresql://me:pa55word-x@db.host:5432/postgres",
                       "SPOTIFY_CLIENT_SECRET": "shhh-secret"})  # fmt: skip
    assert {"shhh-secret", "pa55word-x", "postgresql://me:pa55word-x@db.host:5432/postgres"} <= set(
        s.secrets()
    )


def test_run_url_and_trigger_from_github():
    s = load_settings({"GITHUB_ACTIONS": "true", "DATABASE_URL": "postgresql://h/db",
                       "GITHUB_SERVER_URL": "https://ghe.example", "GITHUB_REPOSITORY": "me/shs",
                       "GITHUB_RUN_ID": "77", "GITHUB_EVENT_NAME": "workflow_dispatch",
                       "GITHUB_STEP_SUMMARY": "/tmp/summary.md"})  # fmt: skip
    assert s.run_url == "https://ghe.example/me/shs/actions/runs/77"
    assert s.trigger == "workflow_dispatch"
    assert s.step_summary_path == "/tmp/summary.md"
    assert s.in_github_actions


def test_dotenv_is_loaded_but_the_real_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        "SPOTIFY_CLIENT_ID=from-dotenv\nSPOTIFY_CLIENT_SECRET=dotenv-secret\n"
    )
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "from-environment")
    monkeypatch.delenv("SPOTIFY_CLIENT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        load_dotenv_file()
        s = load_settings()
        assert s.client_id == "from-environment"
        assert s.client_secret == "dotenv-secret"
    finally:
        os.environ.pop("SPOTIFY_CLIENT_SECRET", None)


# -- DATABASE_URL mistakes: the same precise line in every command and in doctor ------------
MISTAKES = [
    ("postgresql://postgres.abc:[YOUR-PASSWORD]@aws-0-eu.pooler.supabase.com:5432/postgres",
     "still holds Supabase's [YOUR-PASSWORD] placeholder"),
    ("postgresql://postgres.abc:p@ssw0rd@aws-0-eu.pooler.supabase.com:5432/postgres",
     "has '@' in the password"),
    ("postgresql://postgres.abc:pa/ss@aws-0-eu.pooler.supabase.com:5432/postgres",
     "has '/' in the password"),
    ("postgresql://postgres.abc:50%off@aws-0-eu.pooler.supabase.com:5432/postgres",
     "has '%' in the password"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "words"), MISTAKES)
def test_database_url_mistakes_are_named_by_load_settings_and_doctor_alike(url, words):
    from sync.doctor.checkup import check_settings

    with pytest.raises(ConfigError) as err:
        load_settings({"DATABASE_URL": url})
    assert words in str(err.value)
    doctor_line = check_settings({"DATABASE_URL": url})[0][0]
    assert str(err.value) == f"DATABASE_URL {doctor_line.detail}: {doctor_line.fix}"
    assert "ssw0rd" not in str(err.value) and "pa/ss" not in str(err.value)


def test_a_raw_colon_in_the_password_is_fine():  # libpq splits user and password at the first
    url = "postgresql://postgres.abc:pa:ss@db.example.org:5432/postgres"
    assert load_settings({"DATABASE_URL": url}).database_url == url


def test_supabase_menu_paths_in_messages_are_the_readme_s():
    from sync.config import urlcheck

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text().replace("**", "")
    for path in (urlcheck.SUPABASE_CONNECT, urlcheck.SUPABASE_RESET):
        assert path in readme, path


@pytest.mark.parametrize("quote", ['"', "'"])
def test_surrounding_quotes_are_dropped_from_secrets_and_ids(quote):
    url = "postgresql://me:pw@db.host:5432/postgres"
    s = load_settings({"DATABASE_URL": f"{quote}{url}{quote}",
                       "SPOTIFY_CLIENT_ID": f" {quote}abc{quote}",
                       "SPOTIFY_CLIENT_SECRET": f"{quote}shh{quote}"})  # fmt: skip
    assert (s.database_url, s.client_id, s.client_secret) == (url, "abc", "shh")
