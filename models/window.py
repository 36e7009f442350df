"""The trainer's training window: labelled transactions of the last N days of event time.

Examples arrive in label order, not event order (a fraud is confirmed days after it
happened), and may arrive twice (at-least-once delivery): the window keys them by
``tx_id`` and evicts by event time relative to the newest event it has seen. Memory is
bounded by ``max_rows``: past it, the oldest events go first.

Because eviction follows the newest event, one example stamped far in the future would
evict everything else. Given a clock (``add(example, now=...)``), the window refuses an
example more than ``max_future_skew_s`` ahead of it, so the newest event time can never run
more than that past the clock. The clock, not the newest event, is the reference: a gap in
the data (a weekend without traffic, a stopped pipeline) is no reason to refuse what follows
it, and a chain of examples each a little ahead of the last cannot walk the window forward.
Without a clock the window cannot tell a far-future event from a gap, so it does not guess.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["TrainingWindow", "WindowData"]


@dataclass(frozen=True)
class WindowData:
    """A snapshot of the window as arrays, sorted by event time."""

    feature_names: list[str]
    X: np.ndarray            # (n, d) float64
    y: np.ndarray            # (n,) int64, 1 = fraud
    ts: np.ndarray           # event time, epoch seconds
    card: np.ndarray         # card ids (object)
    tx_id: np.ndarray        # transaction ids (object)
    score_online: np.ndarray  # the online learner's score at scoring time (NaN when unknown)

    def __len__(self) -> int:
        return len(self.y)


class TrainingWindow:
    """Labelled feature snapshots, deduplicated by ``tx_id``, bounded in event time and rows."""

    def __init__(self, feature_names: Sequence[str], window_s: float,
                 max_rows: int = 1_000_000, max_future_skew_s: float = 86_400.0) -> None:
        if window_s <= 0 or max_rows < 1:
            raise ValueError("window_s and max_rows must be positive")
        if not max_future_skew_s > 0:
            raise ValueError("max_future_skew_s must be positive")
        self.feature_names = list(feature_names)
        self.window_s = float(window_s)
        self.max_rows = int(max_rows)
        self.max_future_skew_s = float(max_future_skew_s)
        # tx_id -> (event_ts, card_id, is_fraud, features float32, score_online)
        self._rows: dict[str, tuple[float, str, bool, np.ndarray, float]] = {}
        self.newest_ts = -math.inf
        self.n_frauds = 0
        self.duplicates = 0
        self.refused_future = 0
        self._since_evict = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, example: Mapping[str, Any], now: float | None = None) -> bool:
        """Add one training-examples record; False when it is a duplicate, already too old, or
        (given the clock ``now``, epoch seconds) more than ``max_future_skew_s`` ahead of it
        (counted in ``refused_future``).

        Raises ValueError, and changes nothing, when the event time or a feature is not a
        finite number once stored (float32: 1e308 would be inf).
        """
        tx_id = example["tx_id"]
        ts = _finite(example["event_ts"], "event_ts")
        if now is not None and ts > now + self.max_future_skew_s:
            self.refused_future += 1
            return False
        if ts < self.newest_ts - self.window_s:
            return False
        if tx_id in self._rows:
            self.duplicates += 1
            return False
        features = example["features"]
        try:
            with np.errstate(over="ignore"):  # an overflow is refused just below
                vector = np.array([float(features.get(n, 0.0)) for n in self.feature_names],
                                  dtype=np.float32)
        except OverflowError:  # an integer too large for a float
            raise ValueError("a feature is too large for a float") from None
        if not np.isfinite(vector).all():
            bad = [n for n, v in zip(self.feature_names, vector) if not np.isfinite(v)]
            raise ValueError(f"features {bad[:5]} are not finite as float32")
        scores = example.get("scores") or {}
        online = scores.get("online", example.get("score_online"))
        online = math.nan if online is None else _finite(online, "the online score")
        fraud = bool(example["is_fraud"])
        self._rows[tx_id] = (ts, str(example["card_id"]), fraud, vector, online)
        self.n_frauds += fraud
        self.newest_ts = max(self.newest_ts, ts)
        self._since_evict += 1
        if self._since_evict >= 10_000 or len(self._rows) > self.max_rows:
            self.evict()
        return True

    def evict(self) -> int:
        """Drop rows older than the window and, past ``max_rows``, the oldest; returns how many."""
        self._since_evict = 0
        cutoff = self.newest_ts - self.window_s
        doomed = [k for k, row in self._rows.items() if row[0] < cutoff]
        over = len(self._rows) - len(doomed) - self.max_rows
        if over > 0:
            kept = sorted(((row[0], k) for k, row in self._rows.items() if row[0] >= cutoff))
            doomed += [k for _, k in kept[:over]]
        for k in doomed:
            self.n_frauds -= self._rows.pop(k)[2]
        return len(doomed)

    def snapshot(self) -> WindowData:
        """The window as arrays sorted by (event time, tx_id): deterministic for equal contents."""
        self.evict()
        items = sorted(self._rows.items(), key=lambda kv: (kv[1][0], kv[0]))
        d = len(self.feature_names)
        X = np.array([row[3] for _, row in items], dtype=np.float64).reshape(len(items), d)
        return WindowData(
            feature_names=list(self.feature_names),
            X=X,
            y=np.array([row[2] for _, row in items], dtype=np.int64),
            ts=np.array([row[0] for _, row in items], dtype=np.float64),
            card=np.array([row[1] for _, row in items], dtype=object),
            tx_id=np.array([k for k, _ in items], dtype=object),
            score_online=np.array([row[4] for _, row in items], dtype=np.float64),
        )

    def digest(self) -> str:
        """sha256 of the sorted (tx_id, label) pairs: equal windows have equal digests."""
        self.evict()  # what arrived too early to be turned away must not count
        h = hashlib.sha256()
        for tx_id in sorted(self._rows):
            h.update(f"{tx_id}\t{int(self._rows[tx_id][2])}\n".encode("utf-8"))
        return h.hexdigest()

    def stats(self) -> dict[str, Any]:
        self.evict()
        times = [row[0] for row in self._rows.values()]
        return {
            "rows": len(self._rows),
            "frauds": self.n_frauds,
            "first_event_ts": min(times) if times else None,
            "last_event_ts": max(times) if times else None,
            "duplicates_ignored": self.duplicates,
        }


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"{what} is too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number}, not a finite number")
    return number
