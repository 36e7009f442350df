"""Keeps this worker's :class:`~fraudstream.stream.terminal_view.TerminalView` current.

Reads every partition of ``<app>-terminal-events`` (no consumer group: each worker needs all of
it), from the offsets of the last saved replica, or from the start without one. ``ready`` is
set once the reader has reached the topic's end as it was when the worker started: scoring
waits for it, so no transaction is scored against a replica that is behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..models.days import DAY_S
from .config import Settings
from .gc_watch import settle_heap
from .kafka_clients import aiokafka_security, follow_forever
from .metrics import WorkerMetrics
from .terminal_view import SnapshotError, TerminalView, write_file

__all__ = ["TerminalFeed"]

log = logging.getLogger("fraudstream.worker")

_RETRY_S = 2.0


class TerminalFeed:
    """The reader task and the periodic save of one worker's terminal replica."""

    def __init__(self, settings: Settings, topic: str, path: Path, metrics: WorkerMetrics,
                 started: float) -> None:
        self.settings = settings
        self.topic = topic
        self.path = path
        self.metrics = metrics
        self.started = started  # process start (time.monotonic()), for the ready gauge
        self.delay_s = settings.label_delay_days * DAY_S
        self.view = self._load()
        self.ready = asyncio.Event()
        self._lag = 0

    def _load(self) -> TerminalView:
        if not self.path.exists():
            log.info("terminal view: no saved replica at %s; reading %s from its start",
                     self.path, self.topic)
            return TerminalView(self.delay_s)
        started = time.monotonic()
        try:
            view = TerminalView.load(self.path, self.topic, self.delay_s)
        except SnapshotError as exc:
            self.metrics.terminal_view_refused.inc()
            log.error("terminal view: refused the saved replica %s (%s); reading %s from its "
                      "start", self.path, exc, self.topic)
            return TerminalView(self.delay_s)
        log.info("terminal view: loaded %d terminals (%d events) from %s in %.2f s",
                 len(view), view.events(), self.path, time.monotonic() - started)
        return view

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnects after errors."""
        await follow_forever(self._follow, self.topic, log, _RETRY_S)

    async def _follow(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=f"{s.worker_id}-terminal-view",
            max_partition_fetch_bytes=4 << 20,
            # Terminal features look at transactions older than the label delay, so a replica
            # a fraction of a second behind loses nothing; fetches that wait to fill keep the
            # broker's request rate (and the worker's) down on a busy machine.
            fetch_min_bytes=64 << 10, fetch_max_wait_ms=200, **aiokafka_security(s))
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(s.partitions)]
            consumer.assign(tps)
            for tp in tps:
                offset = self.view.offsets.get(tp.partition)
                if offset is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
            target = None if self.ready.is_set() else await consumer.end_offsets(tps)
            read = 0
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    for r in records:
                        read += self.view.apply(tp.partition, r.offset, r.value)
                if target is not None and await _reached(consumer, target):
                    target = None
                    self._set_ready(read)
                self._lag = sum(max(0, (consumer.highwater(tp) or 0)
                                    - self.view.offsets.get(tp.partition, 0)) for tp in tps)
        finally:
            await consumer.stop()

    def _set_ready(self, read: int) -> None:
        settle_heap()  # the replica is long-lived: no full collection walks it again
        waited = time.monotonic() - self.started
        self.metrics.worker_ready.set(waited)
        log.info("terminal view ready: %d terminals, %d events read from %s; scoring starts "
                 "%.1f s after the worker started", len(self.view), read, self.topic, waited)
        self.ready.set()

    async def save(self) -> None:
        """Save the replica (the worker's timer); a failure costs restart time, not scoring.

        Encoded a chunk of terminals at a time with the loop served in between, written and
        fsynced in a thread: scoring never waits for the whole replica.
        """
        started = time.monotonic()
        steps = self.view.encode_steps(self.topic)
        for data in steps:
            if data is not None:
                break
            await asyncio.sleep(0)
        try:
            await asyncio.to_thread(write_file, self.path, data)
        except OSError:
            log.exception("terminal view: could not save the replica to %s", self.path)
            return
        self.view.prune()
        self.metrics.terminal_view_save.observe(time.monotonic() - started)
        self.metrics.terminal_view_bytes.set(len(data))

    def update_gauges(self) -> None:
        self.metrics.terminal_view_terminals.set(len(self.view))
        self.metrics.terminal_view_lag.set(self._lag)
        self.metrics.terminal_view_rejected.set(self.view.rejected)


async def _reached(consumer: AIOKafkaConsumer, target: dict[TopicPartition, int]) -> bool:
    for tp, end in target.items():
        if await consumer.position(tp) < end:
            return False
    return True
