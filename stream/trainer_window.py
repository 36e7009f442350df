"""The trainer's training window, read from ``training-examples``.

At start the window is rebuilt by seeking every partition to the records produced in the
last ``trainer_window_days`` (+1 day of slack) and reading up to the end offsets seen then;
after that the trainer's loop polls for new examples. No consumer group: the trainer is one
process and rebuilds from the topic, so it never needs committed offsets.

No record can stop the reader: a training example that is not a contract record, holds a
feature beyond ``max_feature_abs`` or not finite, or is stamped more than
``max_future_skew_s`` ahead of the clock is counted (``fraudstream_trainer_examples_total``
outcome ``invalid`` or ``future``) and skipped, and logged at most once per interval per
reason.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ..models.days import DAY_S
from ..models.window import TrainingWindow, WindowData
from .announce import LONG_LIVED_CLIENT, feature_problem, safe_decode
from .config import Settings
from .logs import RefusalLog, printable
from .metrics import TrainerMetrics

__all__ = ["WindowReader"]

log = logging.getLogger("fraudstream.trainer")


class WindowReader:
    """The training window and the consumer that fills it; ``new_frauds`` counts the
    frauds kept since the last :meth:`take`."""

    def __init__(self, settings: Settings, names: list[str], metrics: TrainerMetrics,
                 refusals: RefusalLog, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.refusals = refusals
        self.stop = stop or threading.Event()
        self.window = TrainingWindow(names, settings.trainer_window_days * DAY_S,
                                     settings.trainer_max_rows,
                                     max_future_skew_s=settings.max_future_skew_s)
        self.new_frauds = 0
        self.partitions: list[TopicPartition] = []
        self._consumer: KafkaConsumer | None = None

    def open(self) -> KafkaConsumer:
        """Assign every partition of ``training-examples`` (raises if the topic has none)."""
        s = self.settings
        consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=None,
                                 enable_auto_commit=False, client_id="fraudstream-trainer",
                                 max_poll_records=5000, **LONG_LIVED_CLIENT,
                                 **s.kafka_python_security())
        topic = s.topics.training_examples
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions (run `fraudstream topics create`)")
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(self.partitions)
        self._consumer = consumer
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def rebuild(self, now: float | None = None) -> dict[str, Any]:
        """Seek every partition to the records produced in the last window (+1 day of slack)
        and read up to the end offsets seen at start. Returns the window's stats."""
        consumer = self._consumer or self.open()
        now = time.time() if now is None else now
        since_ms = int((now - (self.settings.trainer_window_days + 1) * DAY_S) * 1000)
        starts = consumer.offsets_for_times({tp: since_ms for tp in self.partitions})
        ends = consumer.end_offsets(self.partitions)
        total = 0
        for tp in self.partitions:
            found = starts.get(tp)
            offset = found.offset if found is not None else ends[tp]
            consumer.seek(tp, offset)
            total += ends[tp] - offset
        log.info("rebuilding the training window: %d records in %d partitions since %s",
                 total, len(self.partitions),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(since_ms / 1000)))
        started = last_note = time.monotonic()
        read = 0
        while any(consumer.position(tp) < ends[tp] for tp in self.partitions) \
                and not self.stop.is_set():
            read += self.poll(500)
            if time.monotonic() - last_note > 5:
                last_note = time.monotonic()
                log.info("rebuilding the training window: %d/%d records", read, total)
        self.window.evict()
        self.new_frauds = 0
        stats = {**self.window.stats(), "digest": self.window.digest(), "records_read": read,
                 "seconds": round(time.monotonic() - started, 2)}
        log.info("training window rebuilt: %(rows)d rows, %(frauds)d frauds, digest %(digest)s "
                 "(%(records_read)d records in %(seconds)s s)", stats)
        self.gauges()
        return stats

    def poll(self, timeout_ms: int) -> int:
        """Put what one poll returns into the window; returns how many records it read."""
        n = 0
        for records in (self._consumer or self.open()).poll(timeout_ms=timeout_ms).values():
            for r in records:
                n += 1
                self.on_example(r.value, f"{r.topic}/{r.partition}@{r.offset}")
        return n

    def on_example(self, raw: bytes | None, where: str = "", now: float | None = None) -> str:
        """Put one training-examples record into the window; returns its outcome: kept,
        ignored (a duplicate, or older than the window), future (stamped more than
        ``max_future_skew_s`` past ``now``, the wall clock by default) or invalid. Never raises.
        """
        now = time.time() if now is None else now
        outcome, problem, exc_info = "invalid", None, None
        try:
            got = safe_decode("training-examples", raw, max_bytes=1 << 20)
            problem = got.error if got.value is None else example_problem(
                got.value, self.settings.max_feature_abs)
            if problem is None:
                example = got.value
                before = self.window.refused_future
                if self.window.add(example, now=now):
                    outcome = "kept"
                    self.new_frauds += bool(example["is_fraud"])
                elif self.window.refused_future > before:
                    outcome = "future"
                    problem = (f"event_ts {example['event_ts']!r} is more than "
                               f"{self.window.max_future_skew_s:.0f} s past the clock "
                               "(FRAUDSTREAM_MAX_FUTURE_SKEW_S)")
                else:
                    outcome = "ignored"
        except Exception as exc:  # no example may stop the trainer: count it, log it, go on
            outcome, problem, exc_info = "invalid", f"{type(exc).__name__}: {exc}", exc
        self.metrics.examples.labels(outcome).inc()
        if problem is not None:
            self.refusals.refused(self.settings.topics.training_examples, outcome,
                                  f"skipping a training example at {where or 'unknown'}: {problem}",
                                  exc_info=exc_info)
        return outcome

    def take(self) -> WindowData:
        """A snapshot for a cycle; frauds are counted as new from here on."""
        data = self.window.snapshot()
        self.new_frauds = 0
        return data

    def gauges(self) -> None:
        self.metrics.window_rows.set(len(self.window))
        self.metrics.window_frauds.set(self.window.n_frauds)
        self.metrics.new_frauds.set(self.new_frauds)


def example_problem(example: dict[str, Any], max_abs: float) -> str | None:
    """What makes a contract-valid training example unfit for the window, or None."""
    for field in ("event_ts", "label_ts"):
        value = example[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value < 1e11 or not math.isfinite(value):
            return f"{field} {printable(repr(value), 40)} is not epoch seconds"
    for field in ("features", "scores"):
        found = feature_problem(example.get(field) or {}, None, max_abs)
        if found is not None:
            return f"{field}: {found[1]}"
    return None
