"""Garbage-collector pauses of the worker, as a metric.

A full (generation 2) collection walks every Python object the worker holds (card states,
queues, faust's and aiokafka's structures) and holds the event loop meanwhile: every
transaction arriving then waits. ``gc.callbacks`` hear each collection start and stop; the
callback only appends to a deque (no lock: a collection can start inside a metric's own
locked update, and the callback taking that lock again would deadlock), and
:meth:`GcWatch.drain` moves the pauses into the histogram from the housekeeping timer.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from typing import Any

__all__ = ["GcWatch"]


class GcWatch:
    """Collects the pause of every collection until :meth:`drain`; :meth:`close` stops it."""

    def __init__(self, keep: int = 10_000) -> None:
        self._pauses: deque[tuple[int, float]] = deque(maxlen=keep)
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses.append((info["generation"], time.perf_counter() - self._started))

    def drain(self, histogram: Any) -> int:
        """Observe the pauses since the last drain in ``histogram`` (labelled by generation)."""
        n = 0
        while self._pauses:
            generation, seconds = self._pauses.popleft()
            histogram.labels(str(generation)).observe(seconds)
            n += 1
        return n

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
