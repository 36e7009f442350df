"""The faust app: topics, tables and agents of the scoring path. Thin glue over :mod:`stages`.

Data flow (every internal topic has the same partition count as ``transactions``, so faust's
assignor co-partitions each table with the topics its agents read):

    transactions (key card) --card_agent--> <app>-by-terminal (key terminal)
        --terminal_agent--> scores (key card) + <app>-snapshots (key card)
    <app>-snapshots + labels (key card) --join agents--> online learner, training-examples,
        <app>-terminal-frauds (key terminal) --fraud_agent--> terminal state

Card state is keyed by card, terminal state by terminal: the repartition through
``<app>-by-terminal`` is what lets both be point-in-time exact.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, NoReturn

import faust
import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from ..models.features import CardState, TerminalState, feature_names, schema_hash
from ..models.online import OnlineLearner, PrequentialMetrics
from ..models.scorer import (
    FALLBACK_BATCH_FAILED, FALLBACK_ONLINE, FALLBACK_REVIEW, ScoredBatch, Scorer, Thresholds,
)
from .config import Settings
from .contract import Bounds, dead_letter, encode, parse_ts
from .event_time import EventTimeGuard
from .joiner import Joined, LabelJoiner
from .metrics import WorkerMetrics
from .model_follower import ModelFollower
from .topics import internal_topics
from .stages import (
    Message, apply_fraud, card_stage, dead_message, group_by_partition, position,
    processing_error, terminal_stage, triage,
)

__all__ = ["WorkerApp", "build_app"]

log = logging.getLogger("fraudstream.worker")


class Outbox:
    """Records produced by the synchronous stages, sent by the agent before its next batch.

    faust's ``send_soon`` buffer is drained by commits with a loop that only ends when the
    buffer is empty, which under sustained load it never is: commits stalled for seconds and
    a rebalance re-scored most of the stream. Awaiting the send (an enqueue into aiokafka's
    accumulator, not a broker round trip) per batch keeps that buffer empty, so a commit's
    flush waits only for what is in flight.

    Records go straight to faust's aiokafka producer, already serialised: faust's
    ``Topic.send`` layers (channel, future message, serializer registry, sensors) cost several
    times aiokafka's own ~10 us per record, and the pipeline sends four or more records per
    transaction (score, card and terminal changelogs, pending snapshot).

    Every send's delivery future is kept and :meth:`settle` awaits them all before offsets
    are committed (see ``_App``): a record aiokafka gave up on (after its own retries) stops
    the worker before it commits past the lost output, and the records are processed again
    by whoever owns the partitions next. ``producer.flush()`` alone would not do: it waits
    for the sends but does not look at their results.
    """

    #: Exit status of a worker stopped by an undeliverable record (EX_TEMPFAIL: try again).
    EXIT_UNDELIVERABLE = 75
    _HARVEST_AT = 100_000

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._pending: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._inflight: list[tuple[str, asyncio.Future]] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None,
            partition: int | None = None) -> None:
        """Queue one record; ``partition=None`` partitions by ``key`` (murmur2, as faust does)."""
        self._pending.append((topic, key, value, partition))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        send = self._app.producer._ensure_producer().send  # faust's aiokafka AIOKafkaProducer
        inflight = self._inflight
        for topic, key, value, partition in pending:
            try:
                inflight.append((topic, await send(topic, value, key=key, partition=partition)))
            except Exception as exc:  # not even queued (buffer full past its timeout, closed...)
                self.undeliverable(topic, exc)
        if len(inflight) > self._HARVEST_AT:
            self._harvest()

    def _harvest(self) -> None:
        """Drop delivered futures between commits (a long stretch without one grows the list)."""
        still = []
        for topic, fut in self._inflight:
            if not fut.done():
                still.append((topic, fut))
            elif fut.cancelled() or fut.exception() is not None:
                self.undeliverable(topic, fut.exception() or asyncio.CancelledError())
        self._inflight = still

    async def settle(self) -> None:
        """Wait until everything sent so far is acknowledged; stop the worker if it is not."""
        inflight, self._inflight = self._inflight, []
        for topic, fut in inflight:
            try:
                await fut
            except Exception as exc:
                self.undeliverable(topic, exc)

    def undeliverable(self, topic: str, exc: BaseException) -> NoReturn:
        log.critical(
            "a record for topic %s could not be delivered (%s: %s) after the producer's "
            "retries; stopping this worker with status %d before any offset past it is "
            "committed, so its input is processed again after a restart. Check the broker "
            "and the topic (exists, writable, max.message.bytes, ACLs).",
            topic, type(exc).__name__, exc, self.EXIT_UNDELIVERABLE)
        logging.shutdown()
        os._exit(self.EXIT_UNDELIVERABLE)  # not faust's crash path: nothing may commit after this


class _App(faust.App):
    """A faust app whose consumer delivers no record while it seeks back to committed offsets.

    After a rebalance, faust's table recovery resumes the stream partitions and then seeks them
    to their committed offsets with the fetcher running (faust-streaming issue 596). Records
    fetched meanwhile reach the streams while the seek rewinds the consumer's read offsets under
    them: some are dropped as already read, a jump past others counts as a gap in the partition
    (acknowledged), and resuming flow control right after the seek clears the queued ones. Such
    a record is never processed, its offset is committed all the same, and the refetch skips it:
    its transactions never got a score. With the flow stopped for the seek nothing is delivered
    until faust resumes it, after clearing the queues, from the committed offsets.

    It also commits offsets only after the :class:`Outbox` has settled: every record produced
    so far is acknowledged by the broker, or the worker stops (see :meth:`Outbox.settle`).
    """

    outbox: "Outbox | None" = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        seek = consumer.perform_seek
        commit_offsets = consumer._commit_offsets

        async def perform_seek() -> None:
            consumer.stop_flow()  # a no-op for the fetch loop's own seek, which runs stopped
            await seek()

        async def settled_commit_offsets(offsets: Any, start_new_transaction: bool = True) -> bool:
            if self.outbox is not None:
                await self.outbox.settle()
            return await commit_offsets(offsets, start_new_transaction=start_new_transaction)

        consumer.perform_seek = perform_seek
        consumer._commit_offsets = settled_commit_offsets
        return consumer


class TableStore:
    """A faust table written with an explicit partition (micro-batches have no current event).

    Values live in memory as objects; the changelog gets their JSON form (keys and values as
    faust's ``json`` serializer reads them back), so a recovered value is the JSON dict (the
    stages accept both).
    """

    def __init__(self, table: faust.Table, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self._changelog = table.changelog_topic.get_topic_name()

    def get(self, key: str) -> Any:
        return self.table.data.get(key)

    def put(self, partition: int, key: str, value: Any) -> None:
        self.table.data[key] = value
        self.outbox.add(self._changelog, _dumps(key), _dumps(_jsonable(value)), partition)

    def delete(self, partition: int, key: str) -> None:
        self.table.data.pop(key, None)
        self.outbox.add(self._changelog, _dumps(key), None, partition)  # a tombstone

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self.table.data.items())

    def __len__(self) -> int:
        return len(self.table.data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (CardState, TerminalState)):
        return value.to_dict()
    return value


def _message(event: faust.EventT) -> Message:
    m = event.message
    return Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


class WorkerApp:
    """One worker process: the faust app plus the objects its agents share."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 passthrough: bool = False) -> None:
        self.settings = s = settings
        self.registry = registry or CollectorRegistry()
        self.feature_names = feature_names(s.extra_features)
        self.checkpoint_path = Path(s.model_registry) / "online" / f"{s.worker_id}.pkl"
        self.metrics = WorkerMetrics(self.registry)
        self.learner = self._load_learner()
        self.scorer = Scorer(self.learner, Thresholds(s.review_threshold, s.decline_threshold))
        self.prequential = PrequentialMetrics(window=s.prequential_window)
        # The batch models' quality on the same labelled window, from their scoring-time scores.
        self.role_prequential = {role: PrequentialMetrics(window=s.prequential_window)
                                 for role in ("champion", "shadow")}
        self.metrics.model_info.info({"decision_model": self.scorer.model_version,
                                      "online": self.scorer.online_version, "shadow": "none"})
        self.follower = ModelFollower(s, self.scorer, self.learner, self.metrics,
                                      schema_hash(self.feature_names), on_swap=self._on_swap)

        self.app = app = _App(
            s.app_id,
            broker=s.faust_broker,
            broker_credentials=_credentials(s),
            store="memory://",
            autodiscover=False,
            web_enabled=False,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=s.commit_interval_s,
            producer_linger=0.002,
            producer_acks=-1,
            stream_buffer_maxsize=8192,
            table_cleanup_interval=3600,
            logging_config=None,
        )
        t = s.topics
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.transactions = app.topic(t.transactions, **raw)
        self.labels_topic = app.topic(t.labels, **raw)
        # Output topics are written through the Outbox by name; only consumed ones are faust topics.
        # Internal topics carry {"records": [...]} per (micro-batch, partition); see _send_grouped.
        internal = dict(key_type=bytes, key_serializer="raw", value_serializer="json",
                        partitions=s.partitions, internal=True)
        names = internal_topics(s)
        self.by_terminal = app.topic(names["by_terminal"], **internal)
        self.snapshots = app.topic(names["snapshots"], **internal)
        self.terminal_frauds = app.topic(names["terminal_frauds"], **internal)

        table = dict(partitions=s.partitions, default=None,
                     schema=faust.Schema(key_serializer="json", value_serializer="json"))
        self.outbox = app.outbox = Outbox(app)
        self.bounds = Bounds.from_settings(s)
        # Event-time guards of the consumed partitions (stream/event_time.py).
        self.tx_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        self.label_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        app.on_partitions_revoked.connect(self._on_revoked)
        self.cards = TableStore(app.Table("card-state", **table), self.outbox)
        self.terminals = TableStore(app.Table("terminal-state", **table), self.outbox)
        self.joiner = LabelJoiner(
            TableStore(app.Table("pending-snapshots", **table), self.outbox),
            TableStore(app.Table("waiting-labels", **table), self.outbox),
            mode=s.label_mode, maturity_s=s.maturity_s,
            max_pending=s.max_pending_snapshots, max_waiting=s.max_waiting_labels,
        )
        self._dropped_seen = dict(self.joiner.dropped)
        self._assignment_seen: frozenset = frozenset()
        self._lag_labels: set[tuple[str, str]] = set()
        if passthrough:
            app.agent(self.transactions, name="passthrough")(self._passthrough_agent)
        else:
            self._register_agents()

    # -- set-up ------------------------------------------------------------------------
    def _load_learner(self) -> OnlineLearner:
        """This worker's checkpointed learner, verified; a fresh one if there is none or it is refused.

        The checkpoint is pickle, so it is verified against its sha256 sidecar before it is
        unpickled, and refused if its weights are not finite (models/online.py): a tampered or
        poisoned checkpoint costs the learner its history, never the worker its safety.
        """
        s = self.settings
        if self.checkpoint_path.exists():
            try:
                learner = OnlineLearner.load(self.checkpoint_path)
            except Exception as exc:
                self.metrics.checkpoint_refused.labels("load").inc()
                log.error("refused the online-learner checkpoint %s (%s: %s); the learner "
                          "starts fresh", self.checkpoint_path, type(exc).__name__, exc)
            else:
                log.info("restored online learner from %s (%d examples)", self.checkpoint_path,
                         learner.n_learned)
                return learner
        return OnlineLearner(model=s.online_model, class_weight_fraud=s.online_fraud_weight,
                             seed=s.seed)

    def _register_agents(self) -> None:
        app = self.app
        app.agent(self.transactions, name="card-stage")(self._card_agent)
        app.agent(self.by_terminal, name="terminal-stage")(self._terminal_agent)
        app.agent(self.terminal_frauds, name="terminal-frauds")(self._fraud_agent)
        app.agent(self.snapshots, name="snapshot-join")(self._snapshot_agent)
        app.agent(self.labels_topic, name="label-join")(self._label_agent)
        app.timer(1.0)(self._housekeeping)
        app.task(self.follower.run)
        app.timer(self.settings.checkpoint_every_s)(self._checkpoint)

    # -- agents ------------------------------------------------------------------------
    async def _card_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            started = time.perf_counter()
            msgs = [_message(e) for e in events]
            self.metrics.messages_in.labels("transactions").inc(len(msgs))
            result = card_stage(msgs, self.cards, s.max_message_bytes, time.time(),
                                s.extra_features, self.bounds, self.tx_clock)
            self._dead_letter(s.topics.transactions_dlq, "transactions", result.dead)
            for d in result.dead:
                if d.reason == "processing_error":
                    self.metrics.processing_errors.labels("card").inc()
            self._send_grouped(self.by_terminal, result.forward, "terminal_id")
            await self.outbox.flush()
            self._observe_batch("card", len(msgs), started)

    async def _terminal_agent(self, stream: faust.StreamT) -> None:
        delay_s = self.settings.label_delay_days * 86400.0
        async for events in self._internal_batches(stream):
            started = time.perf_counter()
            batch = []
            for e in events:
                for i, rec in enumerate(self._records(e, "score")):
                    if isinstance(rec, dict):
                        batch.append((e.message.partition, position(e.message.offset, i),
                                      {**rec, "via": e.message.partition}))
            failed: list[tuple[dict[str, Any], Exception]] = []
            records = terminal_stage(batch, self.terminals, delay_s, failed)
            for rec, exc in failed:
                self._internal_failure("score", rec, exc)
            self._score_and_emit(records)
            await self.outbox.flush()
            self._observe_batch("score", len(records), started)

    def _records(self, event: faust.EventT, stage: str) -> list[Any]:
        """The records of one internal message (``[]``, counted, if it is not ours)."""
        value = event.value
        records = value.get("records") if isinstance(value, dict) else None
        if not isinstance(records, list):
            m = event.message
            self._internal_failure(stage, {"topic": m.topic, "partition": m.partition,
                                           "offset": m.offset},
                                   ValueError("internal message without a records list"))
            return []
        return records

    def _internal_failure(self, stage: str, record: Any, exc: BaseException) -> None:
        """A record of an internal topic whose processing raised: dead-lettered and counted.

        Internal records derive from a transaction, so they go to the transactions DLQ with
        the record as the payload (it names the transaction) and the cause.
        """
        self.metrics.processing_errors.labels(stage).inc()
        log.error("%s stage: a record raised %s: %s (dead-lettered; the batch carries on)",
                  stage, type(exc).__name__, exc)
        try:
            payload = _dumps(record)
        except Exception:
            payload = repr(record).encode("utf-8", "replace")
        letter = dead_letter(processing_error(exc), payload, f"internal:{stage}", 0, 0, None,
                             time.time(), reason="processing_error")
        self.outbox.add(self.settings.topics.transactions_dlq, None, encode("dlq", letter))
        self.metrics.dead_letters.labels("transactions", "processing_error").inc()

    def _send_grouped(self, topic: faust.TopicT, records: list[dict[str, Any]], key: str) -> None:
        """One internal message per destination partition (see stages.group_by_partition)."""
        name = topic.get_topic_name()
        for partition, group in group_by_partition(records, lambda r: r[key],
                                                   self.settings.partitions).items():
            self.outbox.add(name, None, _dumps({"records": group}), partition)

    def _score_and_emit(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        scored = self._score([r["features"] for r in records])
        now = time.time()
        t_scores = self.settings.topics.scores
        m = self.metrics
        snapshots = []
        value: dict[str, Any] = {}
        for i, rec in enumerate(records):
            # A non-finite per-model score is left out: the wire carries numbers only, and the
            # fallback field says which model could not score.
            per_model = {k: float(v[i]) for k, v in scored.per_model.items() if math.isfinite(v[i])}
            score = float(scored.scores[i])
            value = {
                "tx_id": rec["tx_id"], "card_id": rec["card_id"], "score": score,
                "decision": scored.decisions[i], "model_version": scored.versions[i],
                "event_ts": rec["ts"], "scored_at": now, "models": per_model,
                "reasons": scored.reasons[i],
            }
            fallback = scored.fallbacks[i]
            if fallback is not None:
                value["fallback"] = fallback
                m.score_fallbacks.labels(_fallback_class(fallback)).inc()
            if scored.shadow_version is not None:
                value["shadow_version"] = scored.shadow_version
            self.outbox.add(t_scores, rec["card_id"].encode("utf-8"), _dumps(value))
            snapshots.append({
                "tx_id": rec["tx_id"], "card_id": rec["card_id"],
                "terminal_id": rec["terminal_id"], "event_ts": rec["ts"],
                "features": rec["features"], "score_online": per_model.get("online"),
                "scores": per_model, "model_version": scored.model_version, "via": rec["via"],
                "shadow_version": scored.shadow_version,
            })
            m.latency.observe(max(0.0, now - rec["arrived"]))
            m.scores.observe(score)
            m.decisions.labels(scored.decisions[i]).inc()
        self._send_grouped(self.snapshots, snapshots, "card_id")
        m.transactions_scored.inc(len(records))
        encode("scores", value)  # the shape is identical across a batch: validate one per batch

    def _score(self, features: list[dict[str, float]]) -> ScoredBatch:
        """The scorer's batch, or, if scoring itself raised, a fail-safe ``review`` for each row.

        The scorer already falls back from a model that fails or gives a non-finite score; this
        is the last line, for a bug: no transaction leaves without a decision, and none is
        approved unscored.
        """
        try:
            return self.scorer.score(features)
        except Exception as exc:
            log.exception("scoring a batch of %d raised; every row gets review", len(features))
            n = len(features)
            review = np.full(n, self.scorer.thresholds.review)
            version = self.scorer.model_version
            return ScoredBatch(review, {}, ["review"] * n, version, [[] for _ in features], None,
                               fallbacks=[f"scoring failed ({type(exc).__name__}); review"] * n,
                               versions=[version] * n)

    def _internal_batches(self, stream: faust.StreamT):
        """Micro-batches of an internal topic, whose messages carry up to a batch of records each."""
        s = self.settings
        return stream.take_events(max(1, s.batch_max // 32), within=s.batch_within_s)

    async def _fraud_agent(self, stream: faust.StreamT) -> None:
        async for events in self._internal_batches(stream):
            for e in events:
                m = e.message
                for i, fraud in enumerate(self._records(e, "terminal_fraud")):
                    try:
                        apply_fraud(m.partition, position(m.offset, i), fraud["terminal_id"],
                                    float(fraud["tx_ts"]), self.terminals)
                    except Exception as exc:
                        self._internal_failure("terminal_fraud", fraud, exc)
            await self.outbox.flush()

    async def _snapshot_agent(self, stream: faust.StreamT) -> None:
        async for events in self._internal_batches(stream):
            joined: list[Joined] = []
            for e in events:
                for snap in self._records(e, "join"):
                    try:
                        joined.extend(self.joiner.on_snapshot(e.message.partition, snap))
                    except Exception as exc:
                        self._internal_failure("join", snap, exc)
            self._learn(joined)
            await self.outbox.flush()

    async def _label_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            msgs = [_message(e) for e in events]
            self.metrics.messages_in.labels("labels").inc(len(msgs))
            now = time.time()
            valid, dead = triage("labels", msgs, s.max_message_bytes, now, self.bounds,
                                 self.label_clock)
            joined: list[Joined] = []
            for m, label in valid:
                try:
                    outcome, got = self.joiner.on_label(m.partition, label, parse_ts(label["ts"]))
                except Exception as exc:
                    self.metrics.processing_errors.labels("label").inc()
                    log.error("a label raised %s: %s (dead-lettered)", type(exc).__name__, exc)
                    dead.append(dead_message(m, processing_error(exc), "processing_error", now))
                    continue
                self.metrics.labels.labels(outcome).inc()
                joined.extend(got)
            self._dead_letter(s.topics.labels_dlq, "labels", dead)
            self._learn(joined)
            await self.outbox.flush()

    async def _passthrough_agent(self, stream: faust.StreamT) -> None:
        """The benchmark's ceiling: same client stack, one record out per record in."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            for e in events:
                self.outbox.add(s.topics.scores, e.message.key, e.message.value)
            await self.outbox.flush()
            self.metrics.transactions_scored.inc(len(events))

    # -- learning ----------------------------------------------------------------------
    def _learn(self, joined: list[Joined]) -> None:
        frauds: list[dict[str, Any]] = []
        example = None
        for j in joined:
            try:
                example = self._learn_one(j, frauds) or example
            except Exception as exc:
                self._internal_failure("learn", j.snapshot, exc)
        self._send_grouped(self.terminal_frauds, frauds, "terminal_id")
        if example is not None:
            encode("training-examples", example)  # one per batch, as for scores

    def _learn_one(self, j: Joined, frauds: list[dict[str, Any]]) -> dict[str, Any]:
        m = self.metrics
        snap = j.snapshot
        if self.learner.learn_one(snap["features"], j.is_fraud) is False:
            m.learn_refused.inc()  # non-finite features or weights: the learner kept its state
        online = snap.get("score_online")
        if online is not None:
            self.prequential.update(online, j.is_fraud)
        scores = snap.get("scores") or ({"online": online} if online is not None else {})
        for role, key in (("champion", "batch"), ("shadow", "shadow")):
            if key in scores:
                self.role_prequential[role].update(scores[key], j.is_fraud)
        m.learned.labels("fraud" if j.is_fraud else "legit").inc()
        if j.source == "matured":
            m.labels.labels("matured").inc()
        elif j.is_fraud:
            frauds.append({"terminal_id": snap["terminal_id"], "tx_ts": snap["event_ts"]})
        example = {
            "tx_id": snap["tx_id"], "card_id": snap["card_id"],
            "event_ts": snap["event_ts"], "features": snap["features"],
            "is_fraud": j.is_fraud, "label_ts": j.label_ts, "label_source": j.source,
            "model_version": snap["model_version"], "scores": scores,
            "shadow_version": snap.get("shadow_version"),
        }
        self.outbox.add(self.settings.topics.training_examples,
                        snap["card_id"].encode("utf-8"), _dumps(example))
        return example

    # -- timers ------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        try:
            self._housekeep()
        except Exception:  # a bug here must not stop scoring; it is logged with its traceback
            log.exception("housekeeping failed")
        await self.outbox.flush()

    def _housekeep(self) -> None:
        assignment = frozenset(self.app.consumer.assignment()) if self.app.consumer else frozenset()
        if assignment != self._assignment_seen:
            self._assignment_seen = assignment
            self.joiner.rebuild({tp.partition for tp in assignment
                                 if tp.topic == self.settings.topics.labels})
        self._learn(self.joiner.expire())
        self._update_gauges(assignment)

    def _update_gauges(self, assignment: frozenset) -> None:
        m = self.metrics
        p = self.prequential
        if p.n:
            m.prequential_ap.set(p.average_precision())
            m.prequential_recall.set(p.recall_at(self.settings.review_threshold))
            m.prequential_base_rate.set(p.base_rate())
        for role, rp in self.role_prequential.items():
            if rp.n_positives and rp.n_positives < rp.n:
                m.model_prequential_ap.labels(role).set(rp.average_precision())
        for kind, n in self.joiner.dropped.items():  # the joiner counts, the metric follows
            m.join_dropped.labels(kind).inc(n - self._dropped_seen[kind])
            self._dropped_seen[kind] = n
        m.snapshots_pending.set(len(self.joiner.pending.table.data))
        m.labels_waiting.set(len(self.joiner.waiting.table.data))
        consumer = self.app.consumer
        read = getattr(consumer, "_read_offset", {})
        # A revoked partition's lag is the new owner's to report: drop ours, or it stays stale.
        owned = {(tp.topic, str(tp.partition)) for tp in assignment}
        for labels in self._lag_labels - owned:
            m.consumer_lag.remove(*labels)
        self._lag_labels &= owned
        for tp in assignment:
            if tp.topic not in (self.settings.topics.transactions, self.settings.topics.labels):
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = read.get(tp)
            lag = high - (position + 1 if position is not None else 0)
            m.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, lag))
            self._lag_labels.add((tp.topic, str(tp.partition)))

    def _on_swap(self, role: str) -> None:
        """A new model in a role starts a fresh quality window (older scores were another's)."""
        self.role_prequential[role] = PrequentialMetrics(window=self.settings.prequential_window)

    async def _checkpoint(self) -> None:
        try:
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            self.learner.save(self.checkpoint_path)
        except OSError:  # a full disk must not stop scoring; the next interval retries
            log.exception("could not checkpoint the online learner to %s", self.checkpoint_path)
        except ValueError as exc:  # non-finite weights are never written (models/online.py)
            self.metrics.checkpoint_refused.labels("save").inc()
            log.error("did not checkpoint the online learner: %s", exc)

    # -- helpers -----------------------------------------------------------------------
    def _dead_letter(self, topic: str, source: str, dead: list) -> None:
        for d in dead:
            # The key only routes the letter; a huge one must not make it undeliverable.
            key = d.key[:1024] if d.key is not None else None
            self.outbox.add(topic, key, encode("dlq", d.record))
            self.metrics.dead_letters.labels(source, d.reason).inc()

    async def _on_revoked(self, app: Any = None, revoked: Any = (), **_: Any) -> None:
        """Another worker moves revoked partitions' event time on: forget their watermarks."""
        t = self.settings.topics
        self.tx_clock.forget({tp.partition for tp in revoked if tp.topic == t.transactions})
        self.label_clock.forget({tp.partition for tp in revoked if tp.topic == t.labels})

    def _observe_batch(self, stage: str, size: int, started: float) -> None:
        self.metrics.batch_size.labels(stage).observe(size)
        self.metrics.processing.labels(stage).observe(time.perf_counter() - started)


_FALLBACK_CLASSES = {FALLBACK_ONLINE: "champion_failed", FALLBACK_BATCH_FAILED: "champion_failed",
                     FALLBACK_REVIEW: "no_finite_score"}


def _fallback_class(fallback: str) -> str:
    """The metric label of a fallback reason (models/scorer.py's FALLBACK_* texts)."""
    return _FALLBACK_CLASSES.get(fallback, "scoring_error")


def _dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON for the hot path (orjson: a card's state takes ~3 us, not ~75 us).

    orjson would write a non-finite float as ``null``; none reaches here, because validation
    rejects non-finite input and every feature is a finite function of it.
    """
    return orjson.dumps(value)


def _ssl_context(s: Settings):
    """TLS context for SSL and SASL_SSL: the CA and, when configured, the client certificate."""
    import ssl

    context = ssl.create_default_context(cafile=str(s.ssl_cafile) if s.ssl_cafile else None)
    if s.ssl_certfile:
        context.load_cert_chain(str(s.ssl_certfile), str(s.ssl_keyfile) if s.ssl_keyfile else None,
                                s.ssl_key_password.get_secret_value() if s.ssl_key_password else None)
    return context


def _credentials(s: Settings):
    if s.security_protocol == "PLAINTEXT":
        return None
    context = _ssl_context(s) if s.security_protocol.endswith("SSL") else None
    if s.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=s.sasl_username,
            password=s.sasl_password.get_secret_value() if s.sasl_password else None,
            mechanism=s.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def build_app(settings: Settings, registry: CollectorRegistry | None = None,
              passthrough: bool = False) -> WorkerApp:
    """Build one worker's faust app from the settings."""
    return WorkerApp(settings, registry=registry, passthrough=passthrough)
