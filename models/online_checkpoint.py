"""Checkpoint files of the online learner: pickled, checksum-verified, written crash-safely.

The format is pickle, which runs code when loaded, so :func:`load_checkpoint` unpickles only
bytes whose sha256 the sidecar ``<path>.sha256`` lists.

The sidecar holds one hex digest a line: the new checkpoint's first, then the digest of the
checkpoint it replaces, if that one verified. Both files are written to temp files in the
same folder and fsynced; then the sidecar is renamed into place (and the folder fsynced),
then the checkpoint. A crash between the two renames leaves the old checkpoint with a
sidecar that still lists it, so it loads; a crash before leaves both old files; after, both
new. So the checkpoint in place is always listed, and only digests of bytes a save wrote
(fsynced before they are listed) or had verified are ever listed. The previous digest stays
listed until the next save: those bytes were ours and finite. A crash can leave a
``.online-*.tmp`` file behind; nothing reads it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from typing import Any

from .durable import fsync_dir, write_temp

__all__ = ["CHECKPOINT_VERSION", "SIDECAR_SUFFIX", "CheckpointError", "load_checkpoint",
           "save_checkpoint"]

# v2: learners carry the finiteness guard's state; every checkpoint has a sha256 sidecar.
CHECKPOINT_VERSION = 2
SIDECAR_SUFFIX = ".sha256"


class CheckpointError(ValueError):
    """A checkpoint :meth:`OnlineLearner.load` will not use; the caller starts a fresh learner.

    Raised before unpickling when the checksum sidecar is missing, malformed or does not
    vouch for the checkpoint's bytes, and after unpickling when the content is not a
    learner of this format or its numeric state is not finite.
    """



def save_checkpoint(path: str | os.PathLike[str], learner: Any) -> None:
    """Pickle ``learner`` to ``path``, with its checksum in ``<path>.sha256``, crash-safely
    (see the module docstring)."""
    path = os.fspath(path)
    sidecar = path + SIDECAR_SUFFIX
    folder = os.path.dirname(os.path.abspath(path))
    data = pickle.dumps({"version": CHECKPOINT_VERSION, "learner": learner},
                        protocol=pickle.HIGHEST_PROTOCOL)
    digests = [hashlib.sha256(data).hexdigest()]
    current = _verified_digest(path, sidecar)
    if current is not None and current != digests[0]:
        digests.append(current)
    temps: list[str] = []
    try:
        tmp_data = _write_temp(folder, data, temps)
        tmp_sidecar = _write_temp(folder, "".join(d + "\n" for d in digests).encode(), temps)
        os.replace(tmp_sidecar, sidecar)
        temps.remove(tmp_sidecar)
        fsync_dir(folder)  # the sidecar's rename is durable before the checkpoint's
        os.replace(tmp_data, path)
        temps.remove(tmp_data)
        fsync_dir(folder)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """The learner object :func:`save_checkpoint` pickled to ``path``, verified first.

    Raises :class:`CheckpointError` when the sidecar ``<path>.sha256`` is missing (as for
    checkpoints written before format v2) or malformed, when it does not list the sha256 of
    the checkpoint's bytes (both checked before unpickling), or when the content does not
    unpickle to a checkpoint of this format. ``FileNotFoundError`` when there is no
    checkpoint at all. The caller checks what the learner is.
    """
    path = os.fspath(path)
    sidecar = path + SIDECAR_SUFFIX
    with open(path, "rb") as f:
        data = f.read()
    try:
        allowed = _read_sidecar(sidecar)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path!r} has no checksum sidecar {sidecar!r} (checkpoints written before "
            f"format v{CHECKPOINT_VERSION} have none): not unpickling it; the online "
            "learner starts fresh"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest not in allowed:
        raise CheckpointError(
            f"{path!r} (sha256 {digest}) does not match its sidecar {sidecar!r}: corrupt "
            "or altered, not unpickling it; the online learner starts fresh"
        )
    try:
        obj = pickle.loads(data)  # noqa: S301 - bytes save_checkpoint() wrote, verified above
    except Exception as e:  # ours, but e.g. from code that has since changed
        raise CheckpointError(f"{path!r} could not be unpickled ({type(e).__name__}: {e}); "
                              "the online learner starts fresh") from e
    if not isinstance(obj, dict) or obj.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path!r} is not an online-learner checkpoint v{CHECKPOINT_VERSION}")
    return obj.get("learner")


def _write_temp(folder: str, data: bytes, temps: list[str]) -> str:
    """``data`` in a new fsynced temp file in ``folder``; its name is appended to ``temps``."""
    tmp = write_temp(folder, data, prefix=".online-", suffix=".tmp")
    temps.append(tmp)
    return tmp


def _read_sidecar(sidecar: str) -> set[str]:
    """The digests a sidecar lists; :class:`CheckpointError` if it is not one a line."""
    with open(sidecar, "rb") as f:
        raw = f.read(4096)
    try:
        lines = raw.decode("ascii").split()
    except UnicodeDecodeError:
        lines = []
    if not lines or not all(len(d) == 64 and set(d) <= set("0123456789abcdef") for d in lines):
        raise CheckpointError(f"checksum sidecar {sidecar!r} is malformed: the online learner "
                              "starts fresh")
    return set(lines)


def _verified_digest(path: str, sidecar: str) -> str | None:
    """The sha256 of the checkpoint at ``path`` if its sidecar lists it, else ``None``."""
    try:
        allowed = _read_sidecar(sidecar)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except (OSError, CheckpointError):
        return None
    return digest if digest in allowed else None

