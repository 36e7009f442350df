"""The trainer's side of the model registry and ``model-updates``.

A cycle's challenger is written to the registry as a new version (with the diffusion model,
the newest online-learner checkpoint and the cycle's report in its metadata); when it won,
the registry's champion moves to it and the promotion is announced on ``model-updates``;
otherwise it may be announced as the shadow. A sample of the cycle's synthetic frauds goes
to ``synthetic-frauds`` for the workers' online learners.

At start :meth:`Publisher.reconcile` re-announces the registry's champion when the topic does
not name it (a trainer killed between promoting and announcing, a fresh topic, or garbage
after the last announcement). A refused ``model-updates`` record is counted in
``fraudstream_trainer_control_refused_total{topic="model-updates"}``.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ..models.ledger import state_from
from ..models.refresh import format_report
from ..models.registry import DIFFUSION_FILE, MODEL_FILE, ONLINE_FILE, ArtifactError, Registry
from .announce import (
    Announcement, RefusalLog, announce, latest_announcements, printable, producer, publish_synthetic,
)
from .config import Settings
from .metrics import TrainerMetrics

__all__ = ["Publisher", "code_version"]

log = logging.getLogger("fraudstream.trainer")


class Publisher:
    """Writes cycles' results to the registry and announces what changed."""

    def __init__(self, settings: Settings, registry: Registry, names: list[str], schema: str,
                 metrics: TrainerMetrics, refusals: RefusalLog) -> None:
        self.settings = settings
        self.registry = registry
        self.names = names
        self.schema = schema
        self.metrics = metrics
        self.refusals = refusals

    def publish(self, result: Any, trigger: str, effect: dict[str, Any] | None,
                ledger: dict[str, Any] | None = None) -> str:
        """Write the challenger (a ``run_cycle`` result) to the registry; promote and announce
        it when it won. Returns the cycle's outcome: promoted or kept_champion."""
        s = self.settings
        report = {**result.report, "online_synthetic_effect": effect}
        n_publish = 0
        if s.trainer_publish_synthetic and result.synthetic is not None:
            n_publish = min(s.trainer_synthetic_publish_cap, len(result.synthetic))
        files: dict[str, Any] = {MODEL_FILE: result.challenger.to_bytes()}
        with tempfile.TemporaryDirectory(prefix="fraudstream-cycle-") as tmp:
            if result.diffusion is not None:
                path = Path(tmp) / DIFFUSION_FILE
                result.diffusion.save(path)
                files[DIFFUSION_FILE] = path
            online = self.newest_online_checkpoint()
            if online is not None:
                files[ONLINE_FILE] = online
            metadata = {
                "status": "champion" if result.promote else "challenger",
                "feature_names": self.names,
                "feature_schema": self.schema,
                "trigger": trigger,
                "window": result.report["split"],
                "report": report,
                "code_version": code_version(),
                "synthetic_published": {"n": n_publish,
                                        "at_event_ts": report["split"]["window_last_ts"]},
                "ledger": ledger,
            }
            info = self.registry.publish(files, metadata)
        log.info("cycle report of %s:\n%s", info.version, format_report(report))
        if effect:
            log.info("online learner and published synthetic frauds: %s", effect["summary"])
        kafka = producer(s)
        try:
            if result.promote:
                self.registry.set_champion(info.version, result.reason, self.schema)
                announce(s, {**self.registry.announcement(info.version), "action": "promote",
                             "reason": result.reason}, kafka)
                log.info("promoted %s and announced it on %s", info.version, s.topics.model_updates)
            elif s.trainer_shadow_challengers:
                announce(s, {**self.registry.announcement(info.version, role="shadow"),
                             "action": "shadow", "reason": "challenger not promoted"}, kafka)
                log.info("kept the champion; %s deployed in shadow", info.version)
            else:
                log.info("kept the champion; %s stays in the registry as a challenger", info.version)
            if n_publish:
                sent = publish_synthetic(s, kafka, info.version, self.names, self.schema,
                                         result.synthetic[:n_publish])
                self.metrics.synthetic_published.inc(sent)
                log.info("published %d synthetic frauds for the online learners", sent)
        finally:
            kafka.close(timeout=5)
        if result.synthetic is not None or result.synthetic_verdict != "none":
            self.metrics.synthetic_rows.inc(result.report["synthetic"]["n_requested"])
        removed = self.registry.prune()
        if removed:
            log.info("pruned old versions: %s", ", ".join(removed))
        return "promoted" if result.promote else "kept_champion"

    # -- what earlier versions left -----------------------------------------------------
    def ledger_state(self) -> dict[str, Any]:
        """The augmentation ledger as the newest readable version left it (empty if none)."""
        for version in reversed(self.registry.versions()):
            try:
                return state_from(self.registry.info(version).metadata)
            except ArtifactError:
                continue
        return state_from(None)

    def last_synthetic_publication(self) -> tuple[str, dict[str, Any]] | None:
        """``(version, {"n", "at_event_ts"})`` of the newest version that published synthetic
        frauds to the online learners, or None."""
        for version in reversed(self.registry.versions()):
            try:
                pub = self.registry.info(version).metadata.get("synthetic_published") or {}
            except ArtifactError:
                continue
            if pub.get("n"):
                return version, pub
        return None

    def newest_online_checkpoint(self) -> Path | None:
        folder = Path(self.settings.model_registry) / "online"
        found = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return found[-1] if found else None

    # -- model-updates ------------------------------------------------------------------
    def reconcile(self) -> None:
        """Re-announce the registry's champion if the topic's newest valid champion record does
        not name it with its artifact's sha256. Never raises: a trainer that cannot reconcile
        still trains."""
        try:
            champion = self.registry.champion()
            if not champion:
                return
            payload = self.registry.announcement(champion)
        except ArtifactError as exc:
            log.error("the registry's champion cannot be announced: %s", exc)
            return
        try:
            latest, _ = latest_announcements(self.settings, on_refused=self.refused_announcement)
        except Exception as exc:  # the broker, not a record: the next promotion announces
            log.error("could not read %s to reconcile it with the registry (%s)",
                      self.settings.topics.model_updates, printable(exc))
            return
        announced = latest.get("champion") or {}
        if (announced.get("version"), announced.get("sha256")) == (champion, payload["sha256"]):
            return
        try:
            announce(self.settings, {**payload, "action": "reannounce",
                                     "reason": "model-updates did not name the registry's champion"})
        except Exception as exc:
            log.error("could not re-announce the registry's champion %s: %s", champion,
                      printable(exc))
            return
        log.warning("re-announced the registry's champion %s", champion)

    def refused_announcement(self, ann: Announcement) -> None:
        """Count and log a ``model-updates`` record that fails :func:`check_announcement`."""
        self.metrics.refused.labels("model-updates", ann.refused or "malformed").inc()
        self.refusals.refused(self.settings.topics.model_updates, ann.refused or "malformed",
                              f"ignoring a model-updates record at offset {ann.offset}: {ann.error}")

    def champion_gauges(self) -> None:
        m = self.metrics
        try:
            version = self.registry.champion()
            created = self.registry.info(version).created_at if version else 0.0
        except ArtifactError:
            version, created = None, 0.0
        m.champion.info({"version": version or "none"})
        m.champion_created.set(created)
        m.champion_age.set(time.time() - created if created else 0.0)


def code_version() -> str:
    """The installed fraudstream version, plus the git commit when run from a checkout."""
    try:
        version = importlib_metadata.version("fraudstream")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        if commit.returncode == 0:
            version += "+g" + commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version
