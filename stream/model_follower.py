"""How a worker follows the trainer: model announcements and synthetic frauds.

Every worker reads ``model-updates`` and ``synthetic-frauds`` with no consumer group (each
worker needs every record): model-updates whole, synthetic frauds from where its online
learner stands (its checkpoint keeps the position; a new learner starts at the end). An
announced model is loaded and verified off the event loop, then swapped in on it; the
scoring agents never await inside a micro-batch's scoring, so a swap always falls between
micro-batches and no batch is scored by two models.

Both topics are treated as hostile (see ``stream/announce.py``). A record is refused,
counted (``fraudstream_model_refusals_total{role,reason}`` and
``fraudstream_model_swaps_total{outcome="refused"}``; synthetic frauds in
``fraudstream_synthetic_refused_total{reason}``) and logged at most once per
``_LOG_EVERY_S`` per reason; no record stops the follower or makes it read a record twice.
The champion moves only to a model that

- the registry holds, whose files match their sha256 and the announced one,
- was trained on this worker's feature schema, and
- is the registry's champion (``champion.json``): promotions and rollbacks write it before
  they announce, so a record that names any other version, even a verified one, is refused.

At start-up the newest announcement per role that passes all of this wins: a garbage or
unloadable record at the end of the topic does not leave a worker without its champion.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..models.features import feature_names
from ..models.online import OnlineLearner
from ..models.registry import ArtifactError, Registry
from ..models.scorer import Scorer
from .announce import (
    ROLES, Announcement, RefusalLog, announcement_history, check_announcement, feature_problem,
    printable, safe_decode,
)
from .config import Settings
from .kafka_clients import aiokafka_security, follow_forever
from .metrics import WorkerMetrics

__all__ = ["ModelFollower"]

log = logging.getLogger("fraudstream.worker.models")
_RETRY_S = 5.0
_LOG_EVERY_S = 10.0
_DECODE_REASONS = ("out_of_bounds", "non_finite")


class _Refused(NamedTuple):
    """Why an announced model is not swapped in (``reason``: an ANNOUNCEMENT_REFUSALS value)."""

    reason: str
    error: str


class ModelFollower:
    def __init__(self, settings: Settings, scorer: Scorer, learner: OnlineLearner,
                 metrics: WorkerMetrics, schema: str, on_swap=None, models: bool = True,
                 synthetic: bool = True) -> None:
        self.settings = settings
        self.scorer = scorer
        self.learner = learner
        self.metrics = metrics
        self.schema = schema
        self.feature_names = feature_names(settings.extra_features, settings.feature_set)
        self.registry = Registry(settings.model_registry, keep=settings.trainer_keep_versions)
        self.on_swap = on_swap or (lambda role: None)
        self.updates_offset = 0
        self.refusals = RefusalLog(log, _LOG_EVERY_S)
        # What this process follows: a scoring process the models, a label process (whose
        # learner learns) the synthetic frauds; inline, one process both.
        self.follows_models = models
        self.follows_synthetic = synthetic

    # -- start-up ------------------------------------------------------------------------
    def load_initial(self) -> None:
        """Before scoring starts: load the current champion and shadow (blocking).

        Per role the newest announcement that passes every check wins; newer ones that do
        not are counted and logged as refused.
        """
        try:
            history, self.updates_offset = announcement_history(
                self.settings, on_refused=self._refuse_record)
        except Exception as exc:  # no announcements readable: score with the online learner
            log.error("could not read %s at start-up (%s); starting without a batch model",
                      self.settings.topics.model_updates, printable(exc))
            return
        self.install_initial(history)

    def install_initial(self, history: dict[str, list[Announcement]]) -> None:
        """Per role, install the newest announcement that loads and verifies (``history`` is
        newest first, as :func:`announcement_history` gives it); refuse the newer ones."""
        for role in ROLES:
            for ann in history.get(role, []):
                if self._install(ann, self._load(ann)):
                    break
        self._info()

    # -- following -----------------------------------------------------------------------
    @property
    def synthetic_offset(self) -> int | None:
        """The next synthetic-frauds offset to learn. Kept in the learner (and its
        checkpoint, saved with the weights it describes): a reconnect or a restart resumes
        after the last record the learner's state includes, so frauds published while the
        broker was unreachable or the worker down are learned, once. None until the first
        connection of a learner that never followed the topic, which starts at its end."""
        return self.learner.positions.get(self.settings.topics.synthetic_frauds)

    async def run(self) -> None:
        """Follow both topics until cancelled; reconnects after errors."""
        await follow_forever(self._follow, self.settings.topics.model_updates, log, _RETRY_S)

    async def _follow(self) -> None:
        s = self.settings
        updates = TopicPartition(s.topics.model_updates, 0)
        synthetic = TopicPartition(s.topics.synthetic_frauds, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=None,
                                    auto_offset_reset="latest",
                                    enable_auto_commit=False, client_id=f"{s.worker_id}-models",
                                    **aiokafka_security(s))
        await consumer.start()
        try:
            followed = [tp for tp, on in ((updates, self.follows_models),
                                          (synthetic, self.follows_synthetic)) if on]
            consumer.assign(followed)
            # A position below the log start (retention deleted records while this worker was
            # away) would make the "latest" reset skip every record still there: start at the
            # earliest one kept instead. Past the end (a recreated topic) the reset is right.
            kept = await consumer.beginning_offsets(followed)
            if self.follows_models:
                consumer.seek(updates, max(self.updates_offset, kept[updates]))
            positions = self.learner.positions
            if self.follows_synthetic:
                await self._seek_synthetic(consumer, synthetic, kept[synthetic])
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for r in records:
                        # Neither handler raises: a record is never read twice because of
                        # what it holds (a reconnect resumes after the last one handled).
                        if tp == updates:
                            await self.on_announcement(r.key, r.value, r.offset)
                            self.updates_offset = r.offset + 1
                        else:
                            self.on_synthetic(r.value)
                            positions[synthetic.topic] = r.offset + 1
        finally:
            await consumer.stop()

    async def _seek_synthetic(self, consumer: AIOKafkaConsumer, synthetic: TopicPartition,
                              kept: int) -> None:
        """Resume synthetic frauds after the last one the learner's state includes."""
        positions = self.learner.positions
        offset = positions.get(synthetic.topic)
        if offset is None:
            await consumer.seek_to_end(synthetic)
            positions[synthetic.topic] = await consumer.position(synthetic)
            return
        if offset < kept:
            log.warning("%s: offsets %d-%d were deleted by retention before this learner "
                        "read them; it learns from %d, the earliest kept", synthetic.topic,
                        offset, kept - 1, kept)
            offset = kept
        consumer.seek(synthetic, offset)

    async def on_announcement(self, key: bytes | None, value: bytes | None,
                              offset: int = -1) -> None:
        """Swap in an announced model, or count and log why not. Never raises."""
        ann = check_announcement(key, value, offset)
        if not ann.ok:
            self._refuse_record(ann)
            return
        try:
            current = self.scorer.champion if ann.role == "champion" else self.scorer.shadow
            if (current.version if current is not None else None) == ann.version:
                self.metrics.model_swaps.labels("unchanged").inc()
                return
            loop = asyncio.get_running_loop()
            loaded = await loop.run_in_executor(None, self._load, ann)
            self._install(ann, loaded)
            self._info()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the follower: count, log, go on
            self._refuse(ann.role, "error", f"could not handle the {ann.role} announcement "
                         f"{ann.version!r}: {type(exc).__name__}: {exc}", exc_info=exc)

    def on_synthetic(self, value: bytes | None) -> bool:
        """Learn one synthetic fraud, or count and log why not; True when learned. Never raises.

        Learned only when its features are exactly this worker's feature names, each a finite
        number within ``max_feature_abs``: a synthetic fraud is no evidence, so nothing odd
        about one is worth teaching the learner.
        """
        if self.settings.online_synthetic_weight <= 0:
            self.metrics.synthetic_refused.labels("disabled").inc()  # a setting: nothing to log
            return False
        exc_info: BaseException | None = None
        try:
            refused = self._learn_synthetic(value)
        except Exception as exc:  # a bug must not stop the follower: count, log, go on
            refused, exc_info = _Refused("error", f"{type(exc).__name__}: {exc}"), exc
        if refused is None:
            self.metrics.synthetic_learned.inc()
            return True
        self.metrics.synthetic_refused.labels(refused.reason).inc()
        self.refusals.refused(self.settings.topics.synthetic_frauds, refused.reason,
                              f"refused a synthetic fraud: {refused.error}", exc_info=exc_info)
        return False

    def _learn_synthetic(self, value: bytes | None) -> _Refused | None:
        got = safe_decode("synthetic-frauds", value)
        if got.value is None:
            # the contract's own class where it is one of ours (out_of_bounds, non_finite)
            reason = getattr(got, "reason", None)
            return _Refused(reason if reason in _DECODE_REASONS else "malformed",
                            got.error or "invalid")
        schema = got.value.get("feature_schema")
        if schema not in (None, self.schema):
            # made for another feature vector: learning it would teach noise
            return _Refused("feature_schema", f"made for feature schema {printable(schema, 16)}, "
                                              f"not this worker's {self.schema[:16]}")
        features = got.value["features"]
        problem = feature_problem(features, self.feature_names, self.settings.max_feature_abs)
        if problem is not None:
            return _Refused(*problem)
        x = {n: float(features[n]) for n in self.feature_names}
        if self.learner.learn_one(x, True, self.settings.online_synthetic_weight) is False:
            return _Refused("learner_refused", "the online learner refused it")
        return None

    # -- loading -------------------------------------------------------------------------
    def _load(self, ann: Announcement) -> Any:
        """The verified model, ``None`` for a shadow clear, or the :class:`_Refused` reason.

        Blocking (file reads, checksums): run it off the event loop. Never raises.
        """
        if ann.version is None:
            return None  # check_announcement lets a null version through only as a shadow clear
        payload, version = ann.payload, ann.version
        announced = payload.get("feature_schema")
        if announced not in (None, "", self.schema):
            return _Refused("feature_schema", f"announced for feature schema "
                                              f"{printable(announced, 16)}, not {self.schema[:16]}")
        try:
            model = self.registry.load_batch_model(version, self.schema, payload["sha256"])
        except (ArtifactError, OSError, ValueError) as exc:
            return _Refused("artifact", str(exc))
        except Exception as exc:
            log.exception("loading %s failed", printable(version, 80))
            return _Refused("error", f"{type(exc).__name__}: {exc}")
        if ann.role == "champion":
            try:
                registered = self.registry.champion()
            except (ArtifactError, OSError) as exc:
                return _Refused("not_champion", f"the registry's champion is unreadable ({exc})")
            if registered != version:
                return _Refused("not_champion", f"the registry's champion is "
                                                f"{registered or 'none'}; a champion changes only "
                                                "by a promotion or rollback in the registry")
        return model

    def _install(self, ann: Announcement, model: Any) -> bool:
        """Swap ``model`` in for ``ann.role``; False (counted, logged) when it was refused."""
        role, payload = ann.role, ann.payload
        if isinstance(model, _Refused):
            kept = self.scorer.champion if role == "champion" else self.scorer.shadow
            self._refuse(role, model.reason, f"refused {role} {printable(ann.version, 80)}: "
                         f"{model.error}; keeping "
                         f"{kept.version if kept is not None else 'no batch model'}")
            return False
        if role == "champion":
            self.scorer.swap_champion(model)
        else:
            self.scorer.swap_shadow(model)
        self.metrics.model_swaps.labels("loaded" if model is not None else "cleared").inc()
        self.on_swap(role)
        log.info("%s is now %s (%s: %s)", role, model.version if model is not None else "none",
                 payload.get("action", "announced"), printable(payload.get("reason", ""), 200))
        return True

    def _refuse_record(self, ann: Announcement) -> None:
        self._refuse(ann.role, ann.refused or "malformed",
                     f"refused a {ann.role or 'model-updates'} record at offset {ann.offset}: "
                     f"{ann.error}")

    def _refuse(self, role: str | None, reason: str, message: str,
                exc_info: BaseException | None = None) -> None:
        self.metrics.model_swaps.labels("refused").inc()
        self.metrics.model_refusals.labels(role or "none", reason).inc()
        self.refusals.refused(self.settings.topics.model_updates, reason, message,
                              logging.ERROR, exc_info)

    def _info(self) -> None:
        shadow = self.scorer.shadow
        self.metrics.model_info.info({
            "decision_model": self.scorer.model_version,
            "online": self.scorer.online_version,
            "shadow": shadow.version if shadow is not None else "none",
        })
