"""Durable file writes shared by the registry, the online learner's checkpoints and the
worker's terminal-view snapshot."""

from __future__ import annotations

import os
import tempfile

__all__ = ["atomic_write", "fsync_dir", "write_temp"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename into it survives a power loss only after this)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(folder: str | os.PathLike[str], data: bytes, *, prefix: str = ".tmp-",
               suffix: str = "") -> str:
    """``data`` in a new temp file in ``folder``, fsynced; returns its path (the caller
    renames it into place or removes it)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: str | os.PathLike[str], data: bytes, *, prefix: str = ".tmp-") -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new, whole.

    ``data`` goes to a temp file (``prefix`` + random) in the same folder, is fsynced, renamed
    over ``path``, and the folder fsynced. The temp file is removed if anything fails before
    the rename; a crash can leave it behind, and nothing reads it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = write_temp(folder, data, prefix=prefix)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(folder)
