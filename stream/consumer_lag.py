"""The worker's consumer-lag gauge (declared in stream/metrics.py), kept to the partitions
the worker owns."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

__all__ = ["ConsumerLag"]


class ConsumerLag:
    """The consumer-lag gauge of the partitions this worker owns, and only of those.

    A revoked partition's lag is the new owner's to report: its series is removed here, or it
    would stay at its last value.
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._series: set[tuple[str, str]] = set()

    def update(self, consumer: Any, assignment: frozenset, topics: tuple[str, ...]) -> None:
        owned = {(tp.topic, str(tp.partition)) for tp in assignment}
        for labels in self._series - owned:
            self.gauge.remove(*labels)
        self._series &= owned
        read = getattr(consumer, "_read_offset", {})  # faust's last read offset per partition
        for tp in assignment:
            if tp.topic not in topics:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = read.get(tp)
            lag = high - (position + 1 if position is not None else 0)
            self.gauge.labels(tp.topic, str(tp.partition)).set(max(0, lag))
            self._series.add((tp.topic, str(tp.partition)))
