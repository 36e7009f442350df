"""The faust apps of a worker: topics, tables and agents. Thin glue over :mod:`stages`.

A worker is two processes (``label_process="child"``, the default), each a faust app:

    scoring process (app id, group ``<app>``), one Kafka hop from a transaction to its score:
    transactions (key card) --score agent--> scores (key card)
        card features: this card's state (table card-state, partitioned by card)
        terminal features: this worker's replica of every terminal (stream/terminal_view.py)
        side effects: the card state, <app>-terminal-events (the transaction, for the
        replicas), <app>-snapshots (the scoring-time snapshots, one record per partition and
        micro-batch, to the partition the transaction came from)
        the online learner: the label process's checkpoint, taken every learner_sync_s

    label process (app id and group ``<app>-labels``), at lower CPU priority:
    labels (key card) + <app>-snapshots --> the join (pending-snapshots / waiting-labels) -->
        online learner (checkpointed every learner_sync_s), training-examples,
        <app>-terminal-events (confirmed frauds)

    <app>-terminal-events (all partitions, every scoring process) --terminal feed--> replica

``labels`` and the snapshots topic have the same partition count as ``transactions``, and a
snapshot goes to its transaction's partition number, so faust's assignor gives a label
process the same partitions of both: a card's snapshot and its label meet in its tables.
Scoring never waits for the label path, and the label path (two records in and two out per
transaction, learning) runs on whatever CPU scoring leaves. ``label_process="inline"`` runs
both in one app and one event loop, as one process. Tables are RocksDB-backed with persisted
changelog offsets (stream/state.py) and the replica is saved to disk with its offsets, so a
restart restores seconds of changes, not the service's history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import numpy as np
from prometheus_client import CollectorRegistry

from ..models.features import feature_names, schema_hash
from ..models.online import OnlineLearner, PrequentialMetrics
from ..models.scorer import ScoredBatch, Scorer, Thresholds, fallback_class
from .config import Settings
from .contract import Bounds, dead_letter, encode
from .event_time import EventTimeGuard
from .gc_watch import GcWatch, settle_heap
from .joiner import LabelJoiner
from .label_path import LabelPath
from .learner_checkpoint import load_learner
from .consumer_lag import ConsumerLag
from .metrics import WorkerMetrics, observe_many
from .model_follower import ModelFollower
from .outbox import Outbox, worker_faust_app
from .records import (
    SNAPSHOTS_PER_RECORD, Featurised, Snapshot, finite_scores, score_record, snapshot,
)
from .stages import feature_stage, message_of, partition_for, processing_error
from .state import PartitionedTable, dumps, table_options
from .terminal_feed import TerminalFeed
from .terminal_view import TerminalEvents
from .topics import internal_topics, label_app_id

__all__ = ["WorkerApp", "build_app"]

log = logging.getLogger("fraudstream.worker")


class WorkerApp(LabelPath):
    """One worker process: the faust app plus the objects its agents share.

    ``role`` is ``score`` or ``label`` (the two processes of a worker, see the module
    docstring); with ``label_process="inline"`` the scoring process is also the label process.
    """

    def __init__(self, settings: Settings, metrics_registry: CollectorRegistry | None = None,
                 passthrough: bool = False, role: str | None = None) -> None:
        self.settings = s = settings
        self.role = role = role or s.worker_role
        inline = s.label_process == "inline"
        self.scores_here = role == "score"
        self.labels_here = role == "label" or (inline and not passthrough)
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.feature_names = feature_names(s.extra_features, s.feature_set)
        self.checkpoint_path = Path(s.model_registry) / "online" / f"{s.worker_id}.pkl"
        self.metrics = WorkerMetrics(self.metrics_registry,
                                     role="all" if inline or passthrough else role)
        self.learner = load_learner(self.checkpoint_path, s, self.metrics)
        self._learner_seen = _file_identity(self.checkpoint_path)
        self.metrics.learner_examples.set(self.learner.n_learned)
        self.scorer = Scorer(self.learner, Thresholds(s.review_threshold, s.decline_threshold))
        self.prequential = PrequentialMetrics(window=s.prequential_window)
        # The batch models' quality on the same labelled window, from their scoring-time
        # scores; a window restarts with the first example another version scored.
        self.role_prequential = {role: PrequentialMetrics(window=s.prequential_window)
                                 for role in ("champion", "shadow")}
        self._role_versions: dict[str, Any] = {}
        self.metrics.model_info.info({"decision_model": self.scorer.model_version,
                                      "online": self.scorer.online_version, "shadow": "none"})
        # Scoring follows model-updates, learning follows synthetic-frauds.
        self.follower = ModelFollower(s, self.scorer, self.learner, self.metrics,
                                      schema_hash(self.feature_names),
                                      models=self.scores_here, synthetic=self.labels_here)

        app_id = s.app_id if self.scores_here else label_app_id(s)
        state_dir = s.worker_state_dir if self.scores_here else s.worker_state_dir / "labels"
        self.app = app = worker_faust_app(s, app_id, state_dir)
        t = s.topics
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        internal = internal_topics(s)
        # Output topics are written through the Outbox by name; only consumed ones are faust topics.
        self.terminal_events = internal["terminal_events"]
        self.snapshots = internal["snapshots"]
        consumed = ([t.transactions] if self.scores_here else []) + (
            [t.labels] if self.labels_here else []) + (
            [self.snapshots] if self.labels_here and not self.scores_here else [])
        app.stream_topics = frozenset(consumed)
        self.transactions = app.topic(t.transactions, **raw)
        self.labels_topic = app.topic(t.labels, **raw)
        self.snapshots_topic = app.topic(self.snapshots, **raw)

        table = table_options(s)
        self.outbox = app.outbox = Outbox(app)
        self.bounds = Bounds.from_settings(s)
        # Event-time guards of the consumed partitions (stream/event_time.py).
        self.tx_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        self.label_clock = EventTimeGuard(s.max_future_skew_s, s.max_past_skew_s)
        app.on_partitions_revoked.connect(self._on_revoked)
        self.tables: list[PartitionedTable] = []
        self.cards: PartitionedTable | None = None
        self.joiner: LabelJoiner | None = None
        if self.scores_here:
            self.cards = self._table(app.Table("card-state", **table),
                                     cache_size=s.card_cache_per_partition)
            self.tables.append(self.cards)
        if self.labels_here:
            self.joiner = LabelJoiner(
                self._table(app.Table("pending-snapshots", **table), counted=True),
                self._table(app.Table("waiting-labels", **table), counted=True),
                mode=s.label_mode, maturity_s=s.maturity_s,
                max_pending=s.max_pending_snapshots, max_waiting=s.max_waiting_labels,
            )
            self.tables += [self.joiner.pending, self.joiner.waiting]
            self._dropped_seen = dict(self.joiner.dropped)
        # faust runs every table's recovery callbacks once the whole restore is done, so one
        # callback serves all the tables (one per table reloaded everything each time).
        if self.tables:
            self.tables[0].table.on_recover(self._on_recovered)
        self.outbox.on_settled.append(self._persist_offsets)
        self.feed: TerminalFeed | None = None
        self.view = None
        if self.scores_here:
            self.feed = TerminalFeed(s, self.terminal_events,
                                     s.worker_state_dir / "terminal-view.bin", self.metrics,
                                     started=time.monotonic())
            self.view = self.feed.view
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
        writes = self.metrics.state_writes.labels(table.name)

        async def checkpoint() -> int:  # at each commit, before it (stream/state.py)
            written = await state.checkpoint()
            writes.inc(written)
            return written

        self.outbox.checkpoints.append(checkpoint)
        return state

    # -- set-up ------------------------------------------------------------------------
    def _register_agents(self) -> None:
        app, s = self.app, self.settings
        if self.scores_here:
            app.agent(self.transactions, name="score")(self._score_agent)
            app.task(self.feed.run)
            app.timer(s.view_save_every_s)(self._save_view)
        if self.labels_here:
            app.agent(self.labels_topic, name="label-join")(self._label_agent)
            if not self.scores_here:
                app.agent(self.snapshots_topic, name="snapshot-join")(self._snapshot_agent)
            # Alone, the label process checkpoints as often as its scoring process looks.
            app.timer(s.checkpoint_every_s if self.scores_here else s.learner_sync_s)(
                self._checkpoint)
        else:
            app.timer(s.learner_sync_s)(self._sync_learner)
        app.timer(1.0)(self._housekeeping)
        app.task(self.follower.run)
        app.task(self._watch_loop)

    # -- agents ------------------------------------------------------------------------
    async def _score_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        self._tx_queue = stream.channel.queue  # what the label agent gives way to
        await self.feed.ready.wait()  # never score against a replica that is behind
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            started = time.perf_counter()
            msgs = [message_of(e) for e in events]
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
        """Scoring-time snapshots go to the label join of the card's partition: the label
        process's, through the snapshots topic, or this process's own, inline."""
        if self.joiner is None:
            self._send_snapshots(snapshots)
        else:
            self._join_snapshots(snapshots)

    def _send_snapshots(self, snapshots: list[tuple[int, Snapshot]]) -> None:
        """One record per partition and chunk of a micro-batch: a record per snapshot would
        cost the scoring loop a producer call each, a third of what a score costs."""
        by_partition: dict[int, list[Snapshot]] = {}
        for partition, snap in snapshots:
            by_partition.setdefault(partition, []).append(snap)
        for partition, snaps in by_partition.items():
            for i in range(0, len(snaps), SNAPSHOTS_PER_RECORD):
                self.outbox.add(self.snapshots, None, dumps(snaps[i:i + SNAPSHOTS_PER_RECORD]),
                                partition)

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
        add = self.outbox.add
        latencies, scores = [], []
        for i, rec in enumerate(records):
            per_model = finite_scores(scored, i)
            value = score_record(rec, scored, i, per_model, now)
            if "fallback" in value:
                m.score_fallbacks.labels(fallback_class(value["fallback"])).inc()
            add(t_scores, rec.card_id.encode("utf-8"), dumps(value))
            snapshots.append((rec.partition, snapshot(rec, scored, per_model)))
            latencies.append(max(0.0, now - rec.arrived))
            scores.append(value["score"])
        # Per batch, not per record: a labelled counter or a histogram costs 1-2 us a call.
        observe_many(m.latency, latencies)
        observe_many(m.scores, scores)
        for decision, n in Counter(scored.decisions).items():
            m.decisions.labels(decision).inc(n)
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

    async def _passthrough_agent(self, stream: faust.StreamT) -> None:
        """The benchmark's ceiling: same client stack, one record out per record in."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            now = time.time()  # the same histogram as the pipeline's, for the same comparison
            for e in events:
                self.outbox.add(s.topics.scores, e.message.key, e.message.value)
            observe_many(self.metrics.latency,
                         [max(0.0, now - e.message.timestamp) for e in events])
            await self.outbox.flush()
            self.metrics.transactions_scored.inc(len(events))

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
        if self.joiner is not None:
            self._learn(self.joiner.expire())
        self._update_gauges(assignment)
        if self.feed is not None:
            self.feed.update_gauges()

    async def _on_recovered(self) -> None:
        """faust restored the tables for a new assignment: reload what is kept in memory.

        Runs after each rebalance's restore, before the agents get records again.
        """
        consumer = self.app.consumer
        t = self.settings.topics
        topic = t.transactions if self.scores_here else t.labels
        active = {tp.partition for tp in consumer.assignment()
                  if tp.topic == topic} if consumer else set()
        for table in self.tables:
            table.on_recovered(active)
        if self.joiner is not None:
            self.joiner.rebuild(active)
        settle_heap()  # the restored state is long-lived: no full collection walks it again

    def _persist_offsets(self, delivered: dict[tuple[str, int], int]) -> None:
        for table in self.tables:
            table.persist_offsets(delivered)

    async def _save_view(self) -> None:
        await self.feed.save()  # yields to scoring between chunks: its own histogram times it

    def _update_gauges(self, assignment: frozenset) -> None:
        self.lag.update(self.app.consumer, assignment, tuple(sorted(self.app.stream_topics)))
        if self.joiner is not None:
            self._update_label_gauges()

    async def _sync_learner(self) -> None:
        """Score with the label process's newest learner (its checkpoint, verified).

        A ``stat`` when nothing changed. A checkpoint that does not verify (read between
        the two renames of a save, or tampered with) is left and counted: scoring goes on
        with the learner it has, and the next sync tries again.
        """
        seen = _file_identity(self.checkpoint_path)
        if seen is None or seen == self._learner_seen:
            return
        with self.metrics.periodic_job.labels("sync_learner").time():
            try:
                learner = OnlineLearner.load(self.checkpoint_path)
            except Exception as exc:
                self.metrics.learner_syncs.labels("refused").inc()
                log.warning("did not take the online learner from %s (%s: %s); retrying",
                            self.checkpoint_path, type(exc).__name__, exc)
                return
            self._learner_seen = seen
            if learner.model != self.settings.online_model:
                self.metrics.learner_syncs.labels("refused").inc()
                log.error("the label process checkpointed a %r learner, the settings ask for "
                          "%r: scoring keeps its learner", learner.model,
                          self.settings.online_model)
                return
            # Between micro-batches: the score agent never awaits inside one.
            self.learner = self.scorer.online = self.follower.learner = learner
            self.metrics.learner_syncs.labels("loaded").inc()
            self.metrics.learner_examples.set(learner.n_learned)

    # -- helpers -----------------------------------------------------------------------
    def _dead_letter(self, topic: str, source: str, dead: list) -> None:
        for d in dead:
            # The key only routes the letter; a huge one must not make it undeliverable.
            key = d.key[:1024] if d.key is not None else None
            self.outbox.add(topic, key, encode("dlq", d.record))
            self.metrics.dead_letters.labels(source, d.reason).inc()

    async def _on_revoked(self, app: Any = None, revoked: Any = (), **_: Any) -> None:
        """Another worker moves revoked partitions' event time on: forget their watermarks,
        and any table change the commit before this did not write (stream/state.py)."""
        t = self.settings.topics
        self.tx_clock.forget({tp.partition for tp in revoked if tp.topic == t.transactions})
        self.label_clock.forget({tp.partition for tp in revoked if tp.topic == t.labels})
        partitions = {tp.partition for tp in revoked if tp.topic in self.app.stream_topics}
        for table in self.tables:
            await table.revoke(partitions)

    def _observe_batch(self, stage: str, size: int, started: float) -> None:
        self.metrics.batch_size.labels(stage).observe(size)
        self.metrics.processing.labels(stage).observe(time.perf_counter() - started)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when a checkpoint is replaced (inode, size, mtime); None if there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def build_app(settings: Settings, metrics_registry: CollectorRegistry | None = None,
              passthrough: bool = False, role: str | None = None) -> WorkerApp:
    """Build one worker process's faust app from the settings."""
    return WorkerApp(settings, metrics_registry=metrics_registry, passthrough=passthrough,
                     role=role)
