"""How a worker follows the trainer: model announcements and synthetic frauds.

Every worker reads ``model-updates`` and ``synthetic-frauds`` whole (no consumer group:
each worker needs every record). An announced model is loaded and verified off the event
loop, then swapped in on it; the scoring agents never await inside a micro-batch's scoring,
so a swap always falls between micro-batches and no batch is scored by two models.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..models.online import OnlineLearner
from ..models.registry import ArtifactError, Registry
from ..models.scorer import Scorer
from .announce import latest_announcements
from .config import Settings
from .contract import decode
from .metrics import WorkerMetrics

__all__ = ["ModelFollower"]

log = logging.getLogger("fraudstream.worker.models")
_RETRY_S = 5.0


class ModelFollower:
    def __init__(self, settings: Settings, scorer: Scorer, learner: OnlineLearner,
                 metrics: WorkerMetrics, schema: str, on_swap=None) -> None:
        self.settings = settings
        self.scorer = scorer
        self.learner = learner
        self.metrics = metrics
        self.schema = schema
        self.registry = Registry(settings.model_registry, keep=settings.trainer_keep_versions)
        self.on_swap = on_swap or (lambda role: None)
        self.updates_offset = 0

    # -- start-up ------------------------------------------------------------------------
    def load_initial(self) -> None:
        """Before scoring starts: load the current champion and shadow (blocking)."""
        try:
            latest, self.updates_offset = latest_announcements(self.settings)
        except Exception as exc:  # no announcements readable: score with the online learner
            log.error("could not read %s at start-up (%s); starting without a batch model",
                      self.settings.topics.model_updates, exc)
            return
        for role in ("champion", "shadow"):
            if role in latest:
                self._install(role, latest[role], self._load(latest[role]))
        self._info()

    # -- following -----------------------------------------------------------------------
    async def run(self) -> None:
        """Follow both topics until cancelled; reconnects after errors."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following %s failed; retrying in %.0f s",
                              self.settings.topics.model_updates, _RETRY_S)
                await asyncio.sleep(_RETRY_S)

    async def _follow(self) -> None:
        s = self.settings
        updates = TopicPartition(s.topics.model_updates, 0)
        synthetic = TopicPartition(s.topics.synthetic_frauds, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, client_id=f"{s.worker_id}-models",
                                    **_aiokafka_security(s))
        await consumer.start()
        try:
            consumer.assign([updates, synthetic])
            consumer.seek(updates, self.updates_offset)
            await consumer.seek_to_end(synthetic)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for r in records:
                        if tp == updates:
                            await self.on_announcement(r.key, r.value)
                            self.updates_offset = r.offset + 1
                        else:
                            self.on_synthetic(r.value)
        finally:
            await consumer.stop()

    async def on_announcement(self, key: bytes | None, value: bytes | None) -> None:
        role = (key or b"").decode("utf-8", "replace")
        got = decode("model-updates", value)
        if got.value is None or role not in ("champion", "shadow"):
            self.metrics.model_swaps.labels("refused").inc()
            log.error("refusing a model-updates record (key %r): %s", role, got.error or "unknown role")
            return
        payload = got.value
        current = self.scorer.batch if role == "champion" else self.scorer.shadow
        if current is not None and current.version == payload.get("version"):
            self.metrics.model_swaps.labels("unchanged").inc()
            return
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(None, self._load, payload)
        self._install(role, payload, model)
        self._info()

    def on_synthetic(self, value: bytes | None) -> None:
        weight = self.settings.online_synthetic_weight
        got = decode("synthetic-frauds", value)
        if got.value is None or weight <= 0:
            return
        if got.value.get("feature_schema") not in (None, self.schema):
            return  # made for another feature vector: learning it would teach noise
        self.learner.learn_one(got.value["features"], True, weight)
        self.metrics.synthetic_learned.inc()

    # -- loading -------------------------------------------------------------------------
    def _load(self, payload: dict[str, Any]) -> Any:
        """The verified model, ``None`` for a shadow clear, or the exception that refused it."""
        if payload.get("version") is None:
            return None
        try:
            if payload.get("feature_schema") not in (None, "", self.schema):
                raise ArtifactError(f"{payload['version']}: announced for another feature schema")
            return self.registry.load_batch_model(payload["version"], self.schema, payload.get("sha256"))
        except (ArtifactError, OSError, ValueError) as exc:
            return exc if isinstance(exc, ArtifactError) else ArtifactError(str(exc))

    def _install(self, role: str, payload: dict[str, Any], model: Any) -> None:
        if isinstance(model, ArtifactError):
            self.metrics.model_swaps.labels("refused").inc()
            kept = self.scorer.batch if role == "champion" else self.scorer.shadow
            log.error("refused %s %s: %s; keeping %s", role, payload.get("version"), model,
                      kept.version if kept is not None else "no batch model")
            return
        if role == "champion":
            self.scorer.swap_batch(model)
        else:
            self.scorer.swap_shadow(model)
        self.metrics.model_swaps.labels("loaded" if model is not None else "cleared").inc()
        self.on_swap(role)
        log.info("%s is now %s (%s: %s)", role, model.version if model is not None else "none",
                 payload.get("action", "announced"), payload.get("reason", ""))

    def _info(self) -> None:
        shadow = self.scorer.shadow
        self.metrics.model_info.info({
            "decision_model": self.scorer.model_version,
            "online": self.scorer.online_version,
            "shadow": shadow.version if shadow is not None else "none",
        })


def _aiokafka_security(s: Settings) -> dict[str, Any]:
    from .app import _ssl_context

    kwargs: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = _ssl_context(s)
    if s.security_protocol.startswith("SASL"):
        kwargs.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                      sasl_plain_password=s.sasl_password.get_secret_value() if s.sasl_password else None)
    return kwargs
