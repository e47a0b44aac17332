"""The one user resolver every command but `run` uses (sync.commands.resolve_user)."""

from __future__ import annotations

import argparse

import pytest

from sync.commands import add_user_argument, resolve_user, resolve_users
from sync.errors import UserError
from tests.conftest import add_user


def test_a_user_is_found_by_spotify_id_or_alias(conn):
    alice = add_user(conn, "alice", "refresh-alice-0001")
    bob = add_user(conn, "bob", "refresh-bob-0001")
    assert resolve_user(conn, "bob").key == bob
    assert resolve_user(conn, f"user-{alice}").user_id == "alice"
    assert [u.user_id for u in resolve_users(conn, ["bob", f"user-{alice}"])] == ["bob", "alice"]


def test_without_a_name_the_only_user_or_a_line_naming_the_fix(conn):
    with pytest.raises(UserError, match="no users yet"):
        resolve_user(conn, None)
    add_user(conn, "alice", "refresh-alice-0001")
    assert resolve_user(conn, None).user_id == "alice"
    add_user(conn, "bob", "refresh-bob-0001")
    with pytest.raises(UserError, match="2 users stored: pass --user ID"):
        resolve_user(conn, None)
    assert [u.user_id for u in resolve_users(conn, [])] == ["alice", "bob"]


def test_an_empty_or_unknown_name_is_refused_never_read_as_no_name(conn):
    """`users remove ''` must not pick the only user."""
    add_user(conn, "alice", "refresh-alice-0001")
    for text in ("", "nobody", "user-99"):
        with pytest.raises(UserError, match="no user"):
            resolve_user(conn, text)


def test_the_user_flag_is_one_value_or_a_repeatable_list():
    parser = argparse.ArgumentParser()
    add_user_argument(parser, "only this user")
    many = argparse.ArgumentParser()
    add_user_argument(many, "only these users", many=True)
    assert parser.parse_args([]).user is None
    assert parser.parse_args(["--user", "a", "--user", "b"]).user == "b"
    assert many.parse_args([]).user == []
    assert many.parse_args(["--user", "a", "--user", "b"]).user == ["a", "b"]
