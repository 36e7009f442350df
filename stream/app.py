"""The faust app: topics, tables and agents of the scoring path. Thin glue over :mod:`stages`.

Data flow (one Kafka hop from a transaction to its score):

    transactions (key card) --score agent--> scores (key card)
        card features: this card's state (table card-state, partitioned by card)
        terminal features: this worker's replica of every terminal (stream/terminal_view.py)
        side effects: the card state, a pending snapshot (table pending-snapshots),
        <app>-terminal-events (the transaction, for the other replicas)
    labels (key card) --label agent--> the join (pending-snapshots / waiting-labels) -->
        online learner, training-examples, <app>-terminal-events (confirmed frauds)
    <app>-terminal-events (all partitions, every worker) --terminal feed--> the replica

``labels`` has the same partition count as ``transactions``, so faust's assignor gives a
worker the same partitions of both, and a card's snapshot and its label meet in that worker's
tables. Tables are RocksDB-backed with persisted changelog offsets (stream/state.py) and the
replica is saved to disk with its offsets, so a restart restores seconds of changes, not the
service's history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import faust
import numpy as np
from prometheus_client import CollectorRegistry

from ..models.features import feature_names, schema_hash
from ..models.online import PrequentialMetrics
from ..models.scorer import ScoredBatch, Scorer, Thresholds, fallback_class
from .config import Settings
from .contract import Bounds, dead_letter, encode, parse_ts
from .event_time import EventTimeGuard
from .gc_watch import GcWatch, settle_heap
from .joiner import Joined, LabelJoiner
from .learner_checkpoint import load_learner, save_learner
from .metrics import ConsumerLag, WorkerMetrics
from .model_follower import ModelFollower
from .outbox import Outbox, worker_faust_app
from .records import (
    Featurised, Snapshot, TrainingExample, finite_scores, score_record, snapshot,
    training_example,
)
from .stages import (
    Message, dead_message, feature_stage, partition_for, processing_error, triage,
)
from .state import PartitionedTable, dumps, table_options
from .terminal_feed import TerminalFeed
from .terminal_view import TerminalEvents
from .topics import internal_topics

__all__ = ["WorkerApp", "build_app"]

log = logging.getLogger("fraudstream.worker")


def _message(event: faust.EventT) -> Message:
    m = event.message
    return Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)


class WorkerApp:
    """One worker process: the faust app plus the objects its agents share."""

    def __init__(self, settings: Settings, metrics_registry: CollectorRegistry | None = None,
                 passthrough: bool = False) -> None:
        self.settings = s = settings
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.feature_names = feature_names(s.extra_features, s.feature_set)
        self.checkpoint_path = Path(s.model_registry) / "online" / f"{s.worker_id}.pkl"
        self.metrics = WorkerMetrics(self.metrics_registry)
        self.learner = load_learner(self.checkpoint_path, s, self.metrics)
        self.scorer = Scorer(self.learner, Thresholds(s.review_threshold, s.decline_threshold))
        self.prequential = PrequentialMetrics(window=s.prequential_window)
        # The batch models' quality on the same labelled window, from their scoring-time scores.
        self.role_prequential = {role: PrequentialMetrics(window=s.prequential_window)
                                 for role in ("champion", "shadow")}
        self.metrics.model_info.info({"decision_model": self.scorer.model_version,
                                      "online": self.scorer.online_version, "shadow": "none"})
        self.follower = ModelFollower(s, self.scorer, self.learner, self.metrics,
                                      schema_hash(self.feature_names), on_swap=self._on_swap)

        self.app = app = worker_faust_app(s)
        t = s.topics
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.transactions = app.topic(t.transactions, **raw)
        self.labels_topic = app.topic(t.labels, **raw)
        app.stream_topics = frozenset({t.transactions, t.labels})
        # Output topics are written through the Outbox by name; only consumed ones are faust topics.
        self.terminal_events = internal_topics(s)["terminal_events"]

        table = table_options(s)
        self.outbox = app.outbox = Outbox(app)
        self.bounds = Bounds.from_settings(s)
        # Event-time guards of the consumed partitions (stream/event_time.py).
        self.tx_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        self.label_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        app.on_partitions_revoked.connect(self._on_revoked)
        self.cards = self._table(app.Table("card-state", **table),
                                 cache_size=s.card_cache_per_partition)
        self.joiner = LabelJoiner(
            self._table(app.Table("pending-snapshots", **table), counted=True),
            self._table(app.Table("waiting-labels", **table), counted=True),
            mode=s.label_mode, maturity_s=s.maturity_s,
            max_pending=s.max_pending_snapshots, max_waiting=s.max_waiting_labels,
        )
        self.tables = [self.cards, self.joiner.pending, self.joiner.waiting]
        # faust runs every table's recovery callbacks once the whole restore is done, so one
        # callback serves all three tables (one per table reloaded everything three times).
        self.cards.table.on_recover(self._on_recovered)
        self.outbox.on_settled.append(self._persist_offsets)
        self.feed = TerminalFeed(s, self.terminal_events,
                                 s.worker_state_dir / "terminal-view.bin", self.metrics,
                                 started=time.monotonic())
        self.view = self.feed.view
        self._dropped_seen = dict(self.joiner.dropped)
        self._quality_due = 0.0  # when the learners' quality gauges are next computed
        self._tx_queue: Any = None  # the score agent's input queue, once it runs
        self.lag = ConsumerLag(self.metrics.consumer_lag)
        self.gc_watch = GcWatch()
        if passthrough:
            app.agent(self.transactions, name="passthrough")(self._passthrough_agent)
        else:
            self._register_agents()

    def _table(self, table: faust.Table, counted: bool = False, cache_size: int = 0
               ) -> PartitionedTable:
        state = PartitionedTable(table, self.outbox.add, counted=counted, cache_size=cache_size)
        self.outbox.tracked.add(state.changelog)
        return state

    # -- set-up ------------------------------------------------------------------------
    def _register_agents(self) -> None:
        app = self.app
        app.agent(self.transactions, name="score")(self._score_agent)
        app.agent(self.labels_topic, name="label-join")(self._label_agent)
        app.timer(1.0)(self._housekeeping)
        app.task(self.follower.run)
        app.task(self.feed.run)
        app.task(self._watch_loop)
        app.timer(self.settings.checkpoint_every_s)(self._checkpoint)
        app.timer(self.settings.view_save_every_s)(self._save_view)

    # -- agents ------------------------------------------------------------------------
    async def _score_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        self._tx_queue = stream.channel.queue  # what the label agent gives way to
        await self.feed.ready.wait()  # never score against a replica that is behind
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            started = time.perf_counter()
            msgs = [_message(e) for e in events]
            self.metrics.messages_in.labels("transactions").inc(len(msgs))
            result = feature_stage(msgs, self.cards, self.view, s.max_message_bytes, time.time(),
                                   s.extra_features, self.bounds, self.tx_clock, s.feature_set)
            self._dead_letter(s.topics.transactions_dlq, "transactions", result.dead)
            for d in result.dead:
                if d.reason == "processing_error":
                    self.metrics.processing_errors.labels("score").inc()
            snapshots = self._score_and_emit(result.records)
            self._send_events(result.events)
            self._pend(snapshots)  # in memory, ~2 us a snapshot: one flush for the batch
            self._observe_batch("score", len(msgs), started)
            await self.outbox.flush()

    def _pend(self, snapshots: list[tuple[int, Snapshot]]) -> None:
        """Scoring-time snapshots wait in the join for their labels (same partition as the card)."""
        joined: list[Joined] = []
        for partition, snap in snapshots:
            try:
                joined.extend(self.joiner.on_snapshot(partition, snap))
            except Exception as exc:
                self._internal_failure("join", snap, exc)
        self._learn(joined)

    def _send_events(self, events: TerminalEvents) -> None:
        """Terminal events for the other replicas: one message per destination partition."""
        if events:
            n = self.settings.partitions
            for partition, value in events.messages(lambda t: partition_for(t, n)).items():
                self.outbox.add(self.terminal_events, None, value, partition)

    def _internal_failure(self, stage: str, record: Any, exc: BaseException) -> None:
        """A record whose processing raised after validation: dead-lettered and counted.

        Such records derive from a transaction, so they go to the transactions DLQ with the
        record as the payload (it names the transaction) and the cause.
        """
        self.metrics.processing_errors.labels(stage).inc()
        log.error("%s stage: a record raised %s: %s (dead-lettered; the batch carries on)",
                  stage, type(exc).__name__, exc)
        try:
            payload = dumps(record)
        except Exception:
            payload = repr(record).encode("utf-8", "replace")
        letter = dead_letter(processing_error(exc), payload, f"internal:{stage}", 0, 0, None,
                             time.time(), reason="processing_error")
        self.outbox.add(self.settings.topics.transactions_dlq, None, encode("dlq", letter))
        self.metrics.dead_letters.labels("transactions", "processing_error").inc()

    def _score_and_emit(self, records: list[Featurised]) -> list[tuple[int, Snapshot]]:
        """Score a batch and send the scores; returns ``(partition, snapshot)`` per record."""
        if not records:
            return []
        scored = self._score([r.features for r in records])
        now = time.time()
        t_scores = self.settings.topics.scores
        m = self.metrics
        snapshots = []
        value: dict[str, Any] = {}
        for i, rec in enumerate(records):
            per_model = finite_scores(scored, i)
            value = score_record(rec, scored, i, per_model, now)
            if "fallback" in value:
                m.score_fallbacks.labels(fallback_class(value["fallback"])).inc()
            self.outbox.add(t_scores, rec.card_id.encode("utf-8"), dumps(value))
            snapshots.append((rec.partition, snapshot(rec, scored, per_model)))
            m.latency.observe(max(0.0, now - rec.arrived))
            m.scores.observe(value["score"])
            m.decisions.labels(value["decision"]).inc()
        m.transactions_scored.inc(len(records))
        encode("scores", value)  # the shape is identical across a batch: validate one per batch
        return snapshots

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

    async def _label_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        await self.feed.ready.wait()  # confirmed frauds go into the replica
        async for events in stream.take_events(s.label_batch_max, within=s.batch_within_s):
            await self._give_way_to_scoring()
            started = time.perf_counter()
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
            self._observe_batch("label", len(msgs), started)
            await self.outbox.flush()

    async def _give_way_to_scoring(self) -> None:
        """Labels wait while transactions are queued for scoring (at most ``label_defer_max_s``).

        Both agents share one event loop, and a label batch runs to its end once started (join,
        learning, training examples: ~0.2 ms a label), so a transaction arriving meanwhile
        waits for it. Label batches are small (``label_batch_max``) and start when no
        transaction is waiting: scoring latency does not carry the label path. Under a load
        above capacity labels lag instead of scores; the bound keeps them moving, and every
        label is still learned.
        """
        queue = self._tx_queue
        if queue is None or not queue.qsize():
            return
        started = time.monotonic()
        deadline = started + self.settings.label_defer_max_s
        while queue.qsize() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        self.metrics.label_deferred.observe(time.monotonic() - started)

    async def _passthrough_agent(self, stream: faust.StreamT) -> None:
        """The benchmark's ceiling: same client stack, one record out per record in."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            now = time.time()  # the same histogram as the pipeline's, for the same comparison
            for e in events:
                self.outbox.add(s.topics.scores, e.message.key, e.message.value)
                self.metrics.latency.observe(max(0.0, now - e.message.timestamp))
            await self.outbox.flush()
            self.metrics.transactions_scored.inc(len(events))

    # -- learning ----------------------------------------------------------------------
    def _learn(self, joined: list[Joined]) -> None:
        events = TerminalEvents()
        example = None
        for j in joined:
            try:
                example = self._learn_one(j, events) or example
            except Exception as exc:
                self._internal_failure("learn", j.snapshot, exc)
        self._send_events(events)
        if example is not None:
            encode("training-examples", example)  # one per batch, as for scores

    def _learn_one(self, j: Joined, events: TerminalEvents) -> TrainingExample:
        m = self.metrics
        snap = j.snapshot
        if self.learner.learn_one(snap["features"], j.is_fraud) is False:
            m.learn_refused.inc()  # non-finite features or weights: the learner kept its state
        example = training_example(snap, j.is_fraud, j.label_ts, j.source)
        scores = example["scores"]
        if "online" in scores:
            self.prequential.update(scores["online"], j.is_fraud)
        for role, key in (("champion", "batch"), ("shadow", "shadow")):
            if key in scores:
                self.role_prequential[role].update(scores[key], j.is_fraud)
        m.learned.labels("fraud" if j.is_fraud else "legit").inc()
        if j.source == "matured":
            m.labels.labels("matured").inc()
        elif j.is_fraud:  # the terminal's fraud ratio counts it (once: by tx_id)
            fraud = [snap["terminal_id"], float(snap["event_ts"]), snap["tx_id"]]
            if self.view.add_fraud(*fraud):
                events.frauds.append(fraud)
        self.outbox.add(self.settings.topics.training_examples,
                        snap["card_id"].encode("utf-8"), dumps(example))
        return example

    # -- timers ------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        with self.metrics.periodic_job.labels("housekeeping").time():
            try:
                self._housekeep()
            except Exception:  # a bug here must not stop scoring; it is logged with its traceback
                log.exception("housekeeping failed")
        await self.outbox.flush()

    async def _watch_loop(self) -> None:
        """Measure how long work holds the event loop: every transaction waits behind it."""
        period = 0.05
        while True:
            started = time.monotonic()
            await asyncio.sleep(period)
            self.metrics.loop_lag.observe(max(0.0, time.monotonic() - started - period))

    def _housekeep(self) -> None:
        self.gc_watch.drain(self.metrics.gc_pause)
        assignment = frozenset(self.app.consumer.assignment()) if self.app.consumer else frozenset()
        self._learn(self.joiner.expire())
        self._update_gauges(assignment)
        self.feed.update_gauges()

    async def _on_recovered(self) -> None:
        """faust restored the tables for a new assignment: reload what is kept in memory.

        Runs after each rebalance's restore, before the agents get records again.
        """
        consumer = self.app.consumer
        active = {tp.partition for tp in consumer.assignment()
                  if tp.topic == self.settings.topics.transactions} if consumer else set()
        for table in self.tables:
            table.on_recovered(active)
        self.joiner.rebuild(active)
        settle_heap()  # the restored state is long-lived: no full collection walks it again

    def _persist_offsets(self, delivered: dict[tuple[str, int], int]) -> None:
        for table in self.tables:
            table.persist_offsets(delivered)

    async def _save_view(self) -> None:
        await self.feed.save()  # yields to scoring between chunks: its own histogram times it

    def _update_gauges(self, assignment: frozenset) -> None:
        m = self.metrics
        p = self.prequential
        # AP over the 20,000-label windows sorts them (4-5 ms each, three of them): every
        # 10 s, not with every second's housekeeping, which holds the scoring loop meanwhile.
        now = time.monotonic()
        if p.n and now >= self._quality_due:
            self._quality_due = now + 10.0
            m.prequential_ap.set(p.average_precision())
            m.prequential_recall.set(p.recall_at(self.settings.review_threshold))
            m.prequential_base_rate.set(p.base_rate())
            for role, rp in self.role_prequential.items():
                if rp.n_positives and rp.n_positives < rp.n:
                    m.model_prequential_ap.labels(role).set(rp.average_precision())
        for kind, n in self.joiner.dropped.items():  # the joiner counts, the metric follows
            m.join_dropped.labels(kind).inc(n - self._dropped_seen[kind])
            self._dropped_seen[kind] = n
        m.snapshots_pending.set(len(self.joiner.pending))
        m.labels_waiting.set(len(self.joiner.waiting))
        t = self.settings.topics
        self.lag.update(self.app.consumer, assignment, (t.transactions, t.labels))

    def _on_swap(self, role: str) -> None:
        """A new model in a role starts a fresh quality window (older scores were another's)."""
        self.role_prequential[role] = PrequentialMetrics(window=self.settings.prequential_window)

    async def _checkpoint(self) -> None:
        with self.metrics.periodic_job.labels("checkpoint_learner").time():
            save_learner(self.learner, self.checkpoint_path, self.metrics)

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


def build_app(settings: Settings, metrics_registry: CollectorRegistry | None = None,
              passthrough: bool = False) -> WorkerApp:
    """Build one worker's faust app from the settings."""
    return WorkerApp(settings, metrics_registry=metrics_registry, passthrough=passthrough)
