"""The embedded database's data directory: where it is, and that git will never commit it.

The embedded Postgres (DATABASE_URL unset) keeps user_tokens, refresh tokens included,
in SYNC_DATA_DIR. A directory inside a git work tree that .gitignore does not cover
would be committed by the next `git add .`, so it is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from sync.errors import ConfigError

log = logging.getLogger(__name__)

KEEP_RUNNING = "keep-running"  # written by `db url`, removed by `db stop`


def expand(raw: str) -> Path:
    """SYNC_DATA_DIR as the owner meant it: ~ and $VARIABLES expanded."""
    return Path(os.path.expandvars(os.path.expanduser(raw)))


def pgdata(data_dir: Path) -> Path:
    return data_dir.resolve() / "pg"


def refuse_if_committable(data_dir: Path) -> None:
    """ConfigError when data_dir is inside a git work tree and not ignored by it."""
    git = shutil.which("git")
    target = pgdata(data_dir)
    anchor = next((p for p in target.parents if p.is_dir()), None)
    if git is None or anchor is None:
        return
    top = _git(git, anchor, "rev-parse", "--show-toplevel")
    if top.returncode != 0:  # not in a work tree (or git cannot tell): nothing to protect
        return
    ignored = _git(git, anchor, "check-ignore", "-q", str(target))
    if ignored.returncode == 1:
        root = Path(top.stdout.strip())
        shown = os.path.relpath(data_dir.resolve(), root)
        raise ConfigError(
            f"SYNC_DATA_DIR {data_dir} is inside the git repository {root} and not in its "
            ".gitignore: `git add .` would commit the embedded database with its refresh "
            f"tokens; add the line {shown}/ to .gitignore, or choose a directory outside "
            "the repository"
        )


def _git(git: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([git, "-C", str(cwd), *args], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def announce_if_new(data_dir: Path) -> None:
    """Say so when the embedded database is about to be created (or was deleted)."""
    if not (pgdata(data_dir) / "PG_VERSION").exists():
        log.warning(
            "no embedded database in %s: creating a new, empty one (if you had one there, "
            "it was deleted or moved; put it back to keep its users and history)",
            data_dir,
        )


def keep_running(data_dir: Path) -> bool:
    return (data_dir / KEEP_RUNNING).exists()
