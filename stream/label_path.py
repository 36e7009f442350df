"""The label side of a worker process, mixed into :class:`~fraudstream.stream.app.WorkerApp`.

Labels and scoring-time snapshots meet in the join (stream/joiner.py); each joined pair is
learned by the online learner, measured (prequential AP of the learner and of the batch
models, from their scoring-time scores) and sent to the trainer as a training example; a
confirmed fraud also goes to the terminal replicas. In a label process (the default) the
snapshots arrive on the snapshots topic and the learner is checkpointed every
``learner_sync_s`` for the scoring process; inline, the score agent hands them over directly
and labels give way to queued transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import faust

from ..models.online import PrequentialMetrics
from .contract import encode, parse_ts
from .joiner import Joined
from .learner_checkpoint import save_learner
from .records import Snapshot, TrainingExample, decode_snapshots, training_example
from .stages import dead_message, message_of, processing_error, triage
from .state import dumps
from .terminal_view import TerminalEvents

__all__ = ["LabelPath"]

log = logging.getLogger("fraudstream.worker")


class LabelPath:
    """The label agents and learning of :class:`WorkerApp` (its attributes are set there)."""

    settings: Any
    metrics: Any
    scores_here: bool

    async def _snapshot_agent(self, stream: faust.StreamT) -> None:
        """The label process's side of the snapshots topic: each snapshot into the join."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            started = time.perf_counter()
            snapshots: list[tuple[int, Snapshot]] = []
            for e in events:
                m = message_of(e)
                got, problem = decode_snapshots(m.value, s.max_feature_abs)
                if problem is not None:
                    # Written by our scoring processes: a bad one is a bug or a stranger.
                    self._internal_failure("join", {"topic": m.topic, "partition": m.partition,
                                                    "offset": m.offset, "error": problem},
                                           ValueError(problem))
                snapshots.extend((m.partition, snap) for snap in got)
            self.metrics.messages_in.labels("snapshots").inc(len(snapshots))
            self._join_snapshots(snapshots)
            self._observe_batch("snapshot", len(snapshots), started)
            await self.outbox.flush()

    async def _label_agent(self, stream: faust.StreamT) -> None:
        s = self.settings
        if self.feed is not None:
            await self.feed.ready.wait()  # confirmed frauds go into the replica
        # Small batches only where labels share the event loop with scoring (inline).
        batch = s.label_batch_max if self.scores_here else s.batch_max
        async for events in stream.take_events(batch, within=s.batch_within_s):
            await self._give_way_to_scoring()
            started = time.perf_counter()
            msgs = [message_of(e) for e in events]
            self.metrics.messages_in.labels("labels").inc(len(msgs))
            now = time.time()
            valid, dead = triage("labels", msgs, s.max_message_bytes, now, self.bounds,
                                 self.label_clock)
            joined: list[Joined] = []
            outcomes: Counter[str] = Counter()
            for m, label in valid:
                try:
                    outcome, got = self.joiner.on_label(m.partition, label, parse_ts(label["ts"]))
                except Exception as exc:
                    self.metrics.processing_errors.labels("label").inc()
                    log.error("a label raised %s: %s (dead-lettered)", type(exc).__name__, exc)
                    dead.append(dead_message(m, processing_error(exc), "processing_error", now))
                    continue
                outcomes[outcome] += 1
                joined.extend(got)
            for outcome, n in outcomes.items():  # per batch: ~1 us a labelled counter call
                self.metrics.labels.labels(outcome).inc(n)
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

    def _join_snapshots(self, snapshots: list[tuple[int, Snapshot]]) -> None:
        joined: list[Joined] = []
        for partition, snap in snapshots:
            try:
                joined.extend(self.joiner.on_snapshot(partition, snap))
            except Exception as exc:
                self._internal_failure("join", snap, exc)
        self._learn(joined)

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
        for role, key, version in (("champion", "batch", snap.get("model_version")),
                                   ("shadow", "shadow", snap.get("shadow_version"))):
            if key in scores:
                if self._role_versions.get(role, version) != version:
                    # another model scored it: its window starts again
                    self.role_prequential[role] = PrequentialMetrics(
                        window=self.settings.prequential_window)
                self._role_versions[role] = version
                self.role_prequential[role].update(scores[key], j.is_fraud)
        m.learned.labels("fraud" if j.is_fraud else "legit").inc()
        if j.source == "matured":
            m.labels.labels("matured").inc()
        elif j.is_fraud:  # the terminal's fraud ratio counts it (once: by tx_id)
            fraud = [snap["terminal_id"], float(snap["event_ts"]), snap["tx_id"]]
            # Without a replica here every one is sent; the replicas count a tx_id once.
            if self.view is None or self.view.add_fraud(*fraud):
                events.frauds.append(fraud)
        self.outbox.add(self.settings.topics.training_examples,
                        snap["card_id"].encode("utf-8"), dumps(example))
        return example

    async def _checkpoint(self) -> None:
        with self.metrics.periodic_job.labels("checkpoint_learner").time():
            save_learner(self.learner, self.checkpoint_path, self.metrics)

    def _update_label_gauges(self) -> None:
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
