"""Exceptions shared across modules. Messages never carry tokens or secrets."""


class UserError(Exception):
    """A problem the owner fixes (settings, arguments, input): exit 2, one line, no traceback."""

    exit_code = 2


class ConfigError(UserError):
    """A setting is missing or malformed."""
