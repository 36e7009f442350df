"""The model registry: versioned, checksummed artifacts in a directory.

Layout (a shared volume or a synced object-store prefix in production)::

    <root>/versions/<version>/metadata.json   what, when, from which data, how good, checksums
    <root>/versions/<version>/model.ubj       the XGBoost batch model (UBJSON)
    <root>/versions/<version>/diffusion.pt    the diffusion model that made its synthetic frauds
    <root>/versions/<version>/online.pkl      an online-learner checkpoint (when one existed)
    <root>/champion.json                      the current champion and the ones before it
    <root>/.staging/                          versions being written (never read)

A version is written into ``.staging`` and appears under ``versions/`` by one ``rename``, so
a reader sees a whole version or none: a writer killed half way leaves only staging debris,
which :meth:`Registry.clean_staging` removes. Every file's sha256 is in the metadata and is
checked before anything is loaded: nothing is unpickled (``online.pkl``) or deserialised
from a file that fails it. Pure file-system code: no Kafka, no environment, no metrics.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from .batch import XGBoostModel
from .durable import atomic_write, fsync_dir

__all__ = ["ArtifactError", "Registry", "VersionInfo", "MODEL_FILE", "sha256_file"]

MODEL_FILE = "model.ubj"
DIFFUSION_FILE = "diffusion.pt"
ONLINE_FILE = "online.pkl"
METADATA_FILE = "metadata.json"
_VERSION = re.compile(r"^v(\d{4,})-\d{8}T\d{6}Z$")


class ArtifactError(Exception):
    """An artifact that must not be used: missing, checksum mismatch, wrong feature schema."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    metadata: dict[str, Any]

    @property
    def created_at(self) -> float:
        return float(self.metadata.get("created_at", 0.0))

    @property
    def trained_until(self) -> float | None:
        """The event time its training rows end at (its cycle's ``window.train_end_ts``);
        None when the metadata does not say (versions published before it was recorded)."""
        value = (self.metadata.get("window") or {}).get("train_end_ts")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Registry:
    """Versions under ``root``; keeps the newest ``keep`` plus the champion and the one before it."""

    def __init__(self, root: str | os.PathLike[str], keep: int = 10) -> None:
        if keep < 2:
            raise ValueError("keep at least 2 versions (a champion and one to roll back to)")
        self.root = Path(root)
        self.keep = keep
        self.versions_dir = self.root / "versions"
        self.staging_dir = self.root / ".staging"
        self.champion_file = self.root / "champion.json"

    # -- writing ---------------------------------------------------------------------------
    def publish(self, files: Mapping[str, bytes | os.PathLike[str]], metadata: Mapping[str, Any],
                now: float | None = None) -> VersionInfo:
        """Write a new version atomically; returns it. ``files`` maps names to bytes or paths."""
        if MODEL_FILE not in files:
            raise ValueError(f"a version needs {MODEL_FILE}")
        model = files[MODEL_FILE]
        if isinstance(model, (bytes, bytearray)) and not model:
            raise ValueError(f"{MODEL_FILE} is empty")
        now = time.time() if now is None else now
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="v-", dir=self.staging_dir))
        try:
            checksums = {}
            for name, content in files.items():
                if "/" in name or name.startswith(".") or name == METADATA_FILE:
                    raise ValueError(f"bad artifact file name {name!r}")
                target = tmp / name
                if isinstance(content, (bytes, bytearray)):
                    _write_synced(target, bytes(content))
                else:
                    shutil.copyfile(content, target)
                    _fsync(target)
                checksums[name] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
            with self._lock():
                version = self._next_version(now)
                meta = {**metadata, "version": version, "created_at": now,
                        "created_at_utc": _utc(now), "files": checksums}
                _write_synced(tmp / METADATA_FILE, _json_bytes(meta))
                fsync_dir(tmp)
                os.rename(tmp, self.versions_dir / version)  # the commit point
                fsync_dir(self.versions_dir)
            return VersionInfo(version, self.versions_dir / version, meta)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def set_champion(self, version: str, reason: str, schema_hash: str | None = None,
                     now: float | None = None) -> dict[str, Any]:
        """Make a verified version the champion; the previous one goes onto the history."""
        self.verify(version, schema_hash)
        with self._lock():
            state = self.champion_state()
            history = list(state.get("history", []))
            if state.get("version") and state["version"] != version:
                history.append(state["version"])
            return self._write_champion(version, history[-self.keep:], reason, now)

    def rollback(self, reason: str = "rollback", now: float | None = None) -> dict[str, Any]:
        """Return to the previous champion (the history's last verified entry)."""
        with self._lock():
            state = self.champion_state()
            history = list(state.get("history", []))
            while history:
                previous = history.pop()
                try:
                    self.verify(previous)
                except ArtifactError:
                    continue  # pruned or damaged: roll further back
                return self._write_champion(previous, history, reason, now)
        raise ArtifactError("no previous champion to roll back to")

    def prune(self) -> list[str]:
        """Delete all but the newest ``keep`` versions; never the champion or the last two
        entries of its history (what a rollback returns to)."""
        with self._lock():
            state = self.champion_state()
            protected = {state.get("version"), *state.get("history", [])[-2:]}
            versions = self.versions()
            doomed = [v for v in versions[: max(0, len(versions) - self.keep)] if v not in protected]
            for v in doomed:
                shutil.rmtree(self.versions_dir / v, ignore_errors=True)
            return doomed

    def clean_staging(self) -> int:
        """Remove what killed writers left in staging; returns how many entries."""
        if not self.staging_dir.exists():
            return 0
        entries = list(self.staging_dir.iterdir())
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        return len(entries)

    # -- reading ---------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Version ids, oldest first."""
        if not self.versions_dir.exists():
            return []
        return sorted((p.name for p in self.versions_dir.iterdir() if _VERSION.match(p.name)),
                      key=lambda v: int(_VERSION.match(v).group(1)))

    def info(self, version: str) -> VersionInfo:
        path = self.versions_dir / version
        if not _VERSION.match(version) or not path.is_dir():
            raise ArtifactError(f"no version {version!r} in {self.root}")
        try:
            meta = json.loads((path / METADATA_FILE).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{version}: unreadable metadata ({exc})") from None
        if not isinstance(meta, dict) or meta.get("version") != version:
            raise ArtifactError(f"{version}: metadata does not describe this version")
        return VersionInfo(version, path, meta)

    def verify(self, version: str, schema_hash: str | None = None,
               sha256: str | None = None) -> VersionInfo:
        """Check every file against its sha256 (and the model against ``sha256`` and the schema)."""
        info = self.info(version)
        files = info.metadata.get("files") or {}
        if MODEL_FILE not in files:
            raise ArtifactError(f"{version}: metadata lists no {MODEL_FILE}")
        for name, expected in files.items():
            path = info.path / name
            if not path.is_file():
                raise ArtifactError(f"{version}: {name} is missing")
            actual = sha256_file(path)
            if actual != expected.get("sha256"):
                raise ArtifactError(f"{version}: {name} sha256 {actual[:12]}… does not match "
                                    f"the metadata's {str(expected.get('sha256'))[:12]}…")
        if sha256 is not None and files[MODEL_FILE]["sha256"] != sha256:
            raise ArtifactError(f"{version}: {MODEL_FILE} is not the announced artifact "
                                f"(sha256 {files[MODEL_FILE]['sha256'][:12]}… != {sha256[:12]}…)")
        if schema_hash is not None and info.metadata.get("feature_schema") != schema_hash:
            raise ArtifactError(f"{version}: trained on another feature schema "
                                f"({str(info.metadata.get('feature_schema'))[:12]}… != {schema_hash[:12]}…)")
        return info

    def load_batch_model(self, version: str, schema_hash: str | None = None,
                         sha256: str | None = None, n_jobs: int = 1) -> XGBoostModel:
        """The verified XGBoost model of ``version``."""
        info = self.verify(version, schema_hash, sha256)
        try:
            # from_bytes checks the bytes it parses: a file replaced after verify() is refused.
            return XGBoostModel.from_bytes((info.path / MODEL_FILE).read_bytes(),
                                           info.metadata["feature_names"], version, n_jobs,
                                           sha256=info.metadata["files"][MODEL_FILE]["sha256"])
        except (ValueError, KeyError) as exc:
            raise ArtifactError(f"{version}: {exc}") from None

    def file_path(self, version: str, name: str) -> Path:
        """Path of a verified version's file (verification covers all its files)."""
        info = self.verify(version)
        if name not in info.metadata["files"]:
            raise ArtifactError(f"{version} has no {name}")
        return info.path / name

    def champion_state(self) -> dict[str, Any]:
        """``{"version", "history", "reason", "updated_at"}``; empty when there is none."""
        try:
            state = json.loads(self.champion_file.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ArtifactError(f"{self.champion_file}: unreadable ({exc})") from None
        return state if isinstance(state, dict) else {}

    def champion(self) -> str | None:
        return self.champion_state().get("version")

    def announcement(self, version: str, role: str = "champion",
                     now: float | None = None) -> dict[str, Any]:
        """The ``model-updates`` record announcing ``version`` (contract kind model-updates)."""
        info = self.verify(version)
        meta = info.metadata
        return {
            "version": version,
            "artifact": f"versions/{version}/{MODEL_FILE}",
            "sha256": meta["files"][MODEL_FILE]["sha256"],
            "feature_schema": meta.get("feature_schema", ""),
            "metrics": (meta.get("report") or {}).get("holdout", {}).get("challenger", {}),
            "role": role,
            "at": time.time() if now is None else now,
        }

    # -- internals -------------------------------------------------------------------------
    def _write_champion(self, version: str, history: list[str], reason: str,
                        now: float | None) -> dict[str, Any]:
        now = time.time() if now is None else now
        state = {"version": version, "history": history, "reason": reason,
                 "updated_at": now, "updated_at_utc": _utc(now)}
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.champion_file, _json_bytes(state), prefix=".champion-")
        return state

    def _next_version(self, now: float) -> str:
        existing = self.versions()
        n = int(_VERSION.match(existing[-1]).group(1)) + 1 if existing else 1
        return f"v{n:04d}-{datetime.fromtimestamp(now, timezone.utc):%Y%m%dT%H%M%SZ}"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time across processes (trainer and the ``models`` CLI)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=True).encode("utf-8")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")
