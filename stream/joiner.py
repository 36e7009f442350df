"""Join labels to the feature snapshot taken at scoring time (never recomputed later).

Both arrive keyed by ``card_id``, so a transaction's snapshot and its label meet on the same
partition. Either may come first: a label can overtake its snapshot when the stream is
replayed fast. Two label feeds are supported:

* ``all``: every transaction gets an explicit label.
* ``fraud_only``: only confirmed frauds are labelled (chargebacks); a snapshot with no fraud
  label once the event-time watermark has passed its ``event_ts + maturity`` is learned as
  legitimate then ("matured").

In ``all`` mode a snapshot or label that finds no partner within ``2 x maturity`` of event
time is dropped and counted as expired, so state stays bounded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Joined", "LabelJoiner", "PartitionedStore"]

Mode = Literal["all", "fraud_only"]


class PartitionedStore(Protocol):
    def get(self, key: str) -> Any: ...
    def put(self, partition: int, key: str, value: Any) -> None: ...
    def delete(self, partition: int, key: str) -> None: ...
    def items(self) -> Any: ...


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
                 maturity_s: float) -> None:
        self.pending = pending
        self.waiting = waiting
        self.mode = mode
        self.maturity_s = maturity_s
        self.watermark = float("-inf")
        # (deadline in event time, kind, tx_id, partition): lazily invalidated, rebuilt on recovery
        self._deadlines: list[tuple[float, str, str, int]] = []
        self.expired = 0

    def rebuild(self) -> None:
        """Re-index deadlines from the stores (after recovery or a rebalance)."""
        self._deadlines = []
        for tx_id, snap in self.pending.items():
            self._push_snapshot(tx_id, snap)
        for tx_id, label in self.waiting.items():
            self._push_label(tx_id, label)

    def _push_snapshot(self, tx_id: str, snap: dict[str, Any]) -> None:
        horizon = self.maturity_s if self.mode == "fraud_only" else 2 * self.maturity_s
        heapq.heappush(self._deadlines, (snap["event_ts"] + horizon, "snapshot", tx_id,
                                         snap["partition"]))

    def _push_label(self, tx_id: str, label: dict[str, Any]) -> None:
        heapq.heappush(self._deadlines, (label["ts"] + 2 * self.maturity_s, "label", tx_id,
                                         label["partition"]))

    def _advance(self, ts: float) -> None:
        if ts > self.watermark:
            self.watermark = ts

    def on_snapshot(self, partition: int, snap: dict[str, Any]) -> list[Joined]:
        """A scored transaction's snapshot arrives; join it if its label is already here."""
        tx_id = snap["tx_id"]
        self._advance(snap["event_ts"])
        label = self.waiting.get(tx_id)
        if label is not None:
            self.waiting.delete(partition, tx_id)
            return [Joined(snap, bool(label["is_fraud"]), float(label["ts"]), "explicit")]
        if self.pending.get(tx_id) is not None:
            return []  # redelivered snapshot: already pending
        snap = {**snap, "partition": partition}
        self.pending.put(partition, tx_id, snap)
        self._push_snapshot(tx_id, snap)
        return []

    def on_label(self, partition: int, label: dict[str, Any], label_ts: float
                 ) -> tuple[str, list[Joined]]:
        """A label arrives: ``("joined", [...])`` or ``("waiting", [])``."""
        tx_id = label["tx_id"]
        self._advance(label_ts)
        snap = self.pending.get(tx_id)
        if snap is not None:
            self.pending.delete(partition, tx_id)
            return "joined", [Joined(snap, bool(label["is_fraud"]), label_ts, "explicit")]
        if self.mode == "fraud_only" and not label["is_fraud"]:
            return "ignored", []  # only frauds are meaningful in this mode
        entry = {"tx_id": tx_id, "is_fraud": bool(label["is_fraud"]), "ts": label_ts,
                 "partition": partition}
        self.waiting.put(partition, tx_id, entry)
        self._push_label(tx_id, entry)
        return "waiting", []

    def expire(self) -> list[Joined]:
        """Mature (fraud_only) or expire entries whose deadline the watermark has passed."""
        matured: list[Joined] = []
        while self._deadlines and self._deadlines[0][0] <= self.watermark:
            deadline, kind, tx_id, partition = heapq.heappop(self._deadlines)
            store = self.pending if kind == "snapshot" else self.waiting
            entry = store.get(tx_id)
            if entry is None:
                continue  # joined meanwhile, or moved to another worker by a rebalance
            store.delete(partition, tx_id)
            if kind == "snapshot" and self.mode == "fraud_only":
                matured.append(Joined(entry, False, deadline, "matured"))
            else:
                self.expired += 1
        return matured
