"""Join labels to the feature snapshot taken at scoring time (never recomputed later).

Both arrive keyed by ``card_id``, so a transaction's snapshot and its label meet on the same
partition. Either may come first: a label can overtake its snapshot when the stream is
replayed fast. Two label feeds are supported:

* ``all``: every transaction gets an explicit label.
* ``fraud_only``: only confirmed frauds are labelled (chargebacks); a snapshot with no fraud
  label once the event-time watermark has passed its ``event_ts + maturity`` is learned as
  legitimate then ("matured").

Deadlines are in event time, each measured on the *other* stream's watermark, because the two
streams are consumed at their own pace (a replay may read a week of labels before the
transactions they belong to): a snapshot matures or expires when the labels have moved
``maturity`` (fraud_only) or ``2 x maturity`` (all) past its event time; a label waiting for
its snapshot expires when the transactions have moved ``maturity`` past the label's time.
Expired entries are dropped and counted. Deadlines only move with the other stream, so a
stalled label feed (or a flood of labels for transactions that never come) would grow the
state without bound: both stores are also capped (``max_pending``, ``max_waiting``), and past
a cap the entry with the oldest event time is dropped first and counted (``dropped``).

Watermarks are per partition, and the snapshot watermark of a partition is the slowest of
its sources (``via``: whatever scored the snapshot). Since scoring takes one hop, a card
partition's snapshots come from that partition alone; the per-source marks remain for
snapshots that carry a ``via`` (a two-hop deployment measured 463 of 11,134 labels lost with
two workers when a single maximum let the fastest source expire labels early).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from .store import PartitionedStore

__all__ = ["Joined", "LabelJoiner"]

Mode = Literal["all", "fraud_only"]


@dataclass(frozen=True)
class Joined:
    """A snapshot with its label: what the learner learns and the trainer receives."""

    snapshot: dict[str, Any]
    is_fraud: bool
    label_ts: float
    source: Literal["explicit", "matured"]


class LabelJoiner:
    """The join's state machine over two partitioned stores (``pending`` snapshots, ``waiting`` labels)."""

    def __init__(self, pending: PartitionedStore, waiting: PartitionedStore, mode: Mode,
                 maturity_s: float, max_pending: int | None = None,
                 max_waiting: int | None = None) -> None:
        self.pending = pending
        self.waiting = waiting
        self.mode = mode
        self.maturity_s = maturity_s
        self.max_pending = max_pending
        self.max_waiting = max_waiting
        self.dropped = {"snapshot": 0, "label": 0}  # entries dropped at a cap, oldest first
        # partition -> newest label time; partition -> {source: newest snapshot event time}
        self._label_marks: dict[int, float] = {}
        self._snapshot_marks: dict[int, dict[Any, float]] = {}
        # partition -> heap of (deadline in event time, tx_id, partition): lazily invalidated,
        # rebuilt on recovery. Snapshot deadlines meet the label watermark and vice versa.
        self._snapshot_deadlines: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
        self._label_deadlines: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
        self.expired = 0
        self.active_partitions: set[int] | None = None  # None: all (no rebalance seen yet)

    def rebuild(self, active_partitions: set[int]) -> None:
        """Re-index deadlines from the stores after recovery or a rebalance.

        A store may still hold entries of partitions this worker no longer owns; they are
        left alone (deleting them would write tombstones into another worker's changelog).
        """
        self.active_partitions = set(active_partitions)
        self._snapshot_deadlines, self._label_deadlines = defaultdict(list), defaultdict(list)
        for tx_id, snap in self.pending.items(self.active_partitions):
            if snap["partition"] in self.active_partitions:
                self._push_snapshot(tx_id, snap)
        for tx_id, label in self.waiting.items(self.active_partitions):
            if label["partition"] in self.active_partitions:
                self._push_label(tx_id, label)

    def _push_snapshot(self, tx_id: str, snap: dict[str, Any]) -> None:
        horizon = self.maturity_s if self.mode == "fraud_only" else 2 * self.maturity_s
        heapq.heappush(self._snapshot_deadlines[snap["partition"]],
                       (snap["event_ts"] + horizon, tx_id, snap["partition"]))

    def _push_label(self, tx_id: str, label: dict[str, Any]) -> None:
        heapq.heappush(self._label_deadlines[label["partition"]],
                       (label["ts"] + self.maturity_s, tx_id, label["partition"]))

    def label_watermark(self, partition: int) -> float:
        return self._label_marks.get(partition, float("-inf"))

    def snapshot_watermark(self, partition: int) -> float:
        """The slowest source's newest snapshot event time on ``partition``."""
        marks = self._snapshot_marks.get(partition)
        return min(marks.values()) if marks else float("-inf")

    def on_snapshot(self, partition: int, snap: dict[str, Any]) -> list[Joined]:
        """A scored transaction's snapshot arrives; join it if its label is already here."""
        tx_id = snap["tx_id"]
        marks = self._snapshot_marks.setdefault(partition, {})
        source = snap.get("via")  # the terminal partition that scored it
        marks[source] = max(marks.get(source, float("-inf")), snap["event_ts"])
        label = self.waiting.pop(partition, tx_id)
        if label is not None:
            return [Joined(snap, bool(label["is_fraud"]), float(label["ts"]), "explicit")]
        if self.pending.get(partition, tx_id) is not None:
            return []  # redelivered snapshot: already pending
        snap = {**snap, "partition": partition}
        self.pending.put(partition, tx_id, snap)
        self._push_snapshot(tx_id, snap)
        if self.max_pending is not None and len(self.pending) > self.max_pending:
            self._drop_oldest(self._snapshot_deadlines, self.pending, "snapshot")
        return []

    def on_label(self, partition: int, label: dict[str, Any], label_ts: float
                 ) -> tuple[str, list[Joined]]:
        """A label arrives: ``("joined", [...])`` or ``("waiting", [])``."""
        tx_id = label["tx_id"]
        self._label_marks[partition] = max(self.label_watermark(partition), label_ts)
        snap = self.pending.pop(partition, tx_id)
        if snap is not None:
            return "joined", [Joined(snap, bool(label["is_fraud"]), label_ts, "explicit")]
        if self.mode == "fraud_only" and not label["is_fraud"]:
            return "ignored", []  # only frauds are meaningful in this mode
        entry = {"tx_id": tx_id, "is_fraud": bool(label["is_fraud"]), "ts": label_ts,
                 "partition": partition}
        self.waiting.put(partition, tx_id, entry)
        self._push_label(tx_id, entry)
        if self.max_waiting is not None and len(self.waiting) > self.max_waiting:
            self._drop_oldest(self._label_deadlines, self.waiting, "label")
        return "waiting", []

    def _drop_oldest(self, heaps: dict[int, list[tuple[float, str, int]]],
                     store: PartitionedStore, kind: str) -> None:
        """Drop the owned entry with the earliest deadline (the oldest event) across partitions.

        Heaps are lazily invalidated: an entry joined or dropped meanwhile is skipped.
        """
        while True:
            live = [(heap[0], p) for p, heap in heaps.items() if heap]
            if not live:
                return
            _, p = min(live)
            _, tx_id, partition = heapq.heappop(heaps[p])
            if self._owns(partition) and store.pop(partition, tx_id) is not None:
                self.dropped[kind] += 1
                return

    def _owns(self, partition: int) -> bool:
        return self.active_partitions is None or partition in self.active_partitions

    def expire(self) -> list[Joined]:
        """Mature (fraud_only) or expire entries whose deadline the other stream has passed."""
        matured: list[Joined] = []
        for p, heap in self._snapshot_deadlines.items():
            mark = self.label_watermark(p)
            while heap and heap[0][0] <= mark:
                deadline, tx_id, partition = heapq.heappop(heap)
                snap = self.pending.pop(partition, tx_id) if self._owns(partition) else None
                if snap is None:
                    continue  # joined meanwhile, or moved to another worker by a rebalance
                if self.mode == "fraud_only":
                    matured.append(Joined(snap, False, deadline, "matured"))
                else:
                    self.expired += 1
        for p, heap in self._label_deadlines.items():
            mark = self.snapshot_watermark(p)
            while heap and heap[0][0] <= mark:
                _, tx_id, partition = heapq.heappop(heap)
                if self._owns(partition) and self.waiting.pop(partition, tx_id) is not None:
                    self.expired += 1
        return matured
