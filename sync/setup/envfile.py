"""The local .env file: settings written readable by the owner only, and never committed."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@%?=&+,~-]*$")
_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def _quoted(value: str) -> str:
    """A value python-dotenv reads back unchanged."""
    if _PLAIN.match(value):
        return value
    if "'" not in value:
        return f"'{value}'"  # single quotes: taken literally
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_env(path: Path, values: Mapping[str, str]) -> list[str]:
    """Set these keys in the file, keep every other line; return the keys that changed.

    The file is written next to the old one with mode 0600 and renamed over it, so it is
    never readable by others, not even for a moment, and an interrupted write loses nothing.
    """
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(values)
    changed: list[str] = []
    out: list[str] = []
    for line in lines:
        match = _KEY.match(line)
        key = match.group(1) if match else None
        if key in pending:
            new = f"{key}={_quoted(pending.pop(key))}"
            if new != line:
                changed.append(key)
            out.append(new)
        else:
            out.append(line)
    for key, value in pending.items():
        out.append(f"{key}={_quoted(value)}")
        changed.append(key)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to a file it creates
        os.write(fd, ("\n".join(out) + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return changed


def ensure_ignored(directory: Path, name: str = ".env") -> bool:
    """Make sure .gitignore keeps the file out of git; return True when a line was added."""
    gitignore = directory / ".gitignore"
    patterns = gitignore.read_text().splitlines() if gitignore.exists() else []
    for pattern in patterns:
        pattern = pattern.strip().lstrip("/")
        if pattern and not pattern.startswith(("#", "!")) and fnmatch.fnmatch(name, pattern):
            return False
    text = "\n".join(patterns)
    gitignore.write_text((text + "\n" if text else "") + name + "\n")
    return True
