"""Writing the export's file all or nothing: a temporary file beside the target, renamed at the
end, so an export that fails (or finds nothing) never leaves a partial file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from sync.errors import UserError


def _cannot(path: Path, exc: OSError) -> UserError:
    reason = exc.strerror or str(exc)
    return UserError(f"cannot write {path}: {reason}; nothing was written (choose another --out)")


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write; it becomes `path` only if the block ends without an exception.

    The temporary file is in the target's own folder (a rename within one file system is
    atomic); an unwritable folder, a missing one or a full disk is one UserError line.
    """
    if path.is_dir():
        raise UserError(f"{path} is a folder: give --out a file name; nothing was written")
    folder = path.parent
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(temp, path)
    except OSError as exc:
        _remove(temp)
        raise _cannot(path, exc) from None
    except BaseException:
        _remove(temp)
        raise


def _remove(temp: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(temp)
