"""Garbage-collector pauses of the worker: kept short, and measured.

A full (generation 2) collection walks every Python object the worker holds (card states,
queues, faust's and aiokafka's structures) and holds the event loop meanwhile: every
transaction arriving then waits. ``gc.callbacks`` hear each collection start and stop; the
callback only appends to a deque (no lock: a collection can start inside a metric's own
locked update, and the callback taking that lock again would deadlock), and
:meth:`GcWatch.drain` moves the pauses into the histogram from the housekeeping timer.

:func:`settle_heap` keeps them short. A worker holds ~200,000 long-lived objects from its
imports (faust, aiokafka, river, xgboost, pandas) and its loaded state; a full collection
walked them all, 150-220 ms each on this project's 2-core machine, about every 7 s under
load: the p99 of scoring. Frozen objects (``gc.freeze``) are never walked again, so a full
collection only sees what was allocated since (measured: 7 us on the imports alone). The
worker settles its heap when it has loaded what it keeps (models, tables, the terminal
replica); garbage among frozen objects is still freed by reference counting, only cycles
among them stay.

State that grows after that (card states, terminals new to the replica) is walked again by
every full collection, and Python runs one after every 10 younger (generation 1) ones: in
the 2,000 tx/s bench, whose replica and card states are built during the run (~75,000
objects), one every ~4.5 s, 5 of 12 longer than 30 ms on a busy machine. :func:`settle_heap`
makes them ten times rarer (:data:`FULL_AFTER_YOUNGER`); the young generations, which hold
the per-transaction garbage, are collected as often as before.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from typing import Any

__all__ = ["GcWatch", "settle_heap", "FULL_AFTER_YOUNGER"]

#: Generation-1 collections between two full ones (Python's default: 10).
FULL_AFTER_YOUNGER = 100


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


def settle_heap() -> int:
    """Collect once, then freeze every object left, and make full collections rarer (see
    above); returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_AFTER_YOUNGER)
    return gc.get_freeze_count()
