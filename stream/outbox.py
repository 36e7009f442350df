"""Records the synchronous stages produce, sent and checked before any input offset is committed.

:class:`Outbox` is the worker's one way out to Kafka; :class:`SettledApp` is the faust app
that commits offsets only once everything the Outbox sent is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any, Awaitable, Callable, NoReturn

import faust

from .config import Settings
from . import fetch_loop, livelock_guard, loop_consumer
from .kafka_clients import faust_credentials
from .logs import flush_logs_and_exit
from .stages import key_partition

__all__ = ["Outbox", "SettledApp", "Delivered", "worker_faust_app"]

log = logging.getLogger("fraudstream.worker")

#: A record count no worker reaches between two timed commits.
_NEVER = 2**62

Delivered = dict[tuple[str, int], int]
"""The highest acknowledged offset per (topic, partition) of the tracked topics."""


class Outbox:
    """Records produced by the synchronous stages, sent by the agent before its next batch.

    faust's ``send_soon`` buffer is drained by commits with a loop that only ends when the
    buffer is empty, which under sustained load it never is: commits stalled for seconds and
    a rebalance re-scored most of the stream. Awaiting the send (an enqueue into aiokafka's
    accumulator, not a broker round trip) per batch keeps that buffer empty, so a commit's
    flush waits only for what is in flight.

    Records go straight to faust's aiokafka producer, already serialised, as record batches
    built here (one per topic and partition and flush, :meth:`flush`): faust's ``Topic.send``
    layers (channel, future message, serializer registry, sensors) cost several times
    aiokafka's ``send``, which itself costs ~25 us a record, and the scoring process sends two
    records or more per transaction (score, card-state changelog, its share of the batched
    snapshots and terminal events).

    Every batch's delivery future is kept and :meth:`settle` awaits them all before offsets
    are committed (see :class:`SettledApp`): a record aiokafka gave up on (after its own
    retries) stops the worker before it commits past the lost output, and the records are
    processed again by whoever owns the partitions next. ``producer.flush()`` alone would
    not do: it waits for the sends but does not look at their results.

    The tables' changelog records (the ``tracked`` topics) go out through a producer of their
    own, on its own connection, and only when a commit settles. aiokafka keeps one request in
    flight per broker connection and holds a partition's next batch until the one before is
    sent, so on one producer the agent's score batches queued behind a commit's changelog
    (a second's changed card states, ~1,500 records at 2,000 tx/s): measured with Poisson
    arrivals at 2,000 tx/s, a score batch then waited 40-70 ms once a second, most of the
    p99 (stop 28's note on issue 13).
    """

    #: Exit status of a worker stopped by an undeliverable record (EX_TEMPFAIL: try again).
    EXIT_UNDELIVERABLE = 75
    _HARVEST_AT = 100_000

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._pending: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._changelog: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self._changelog_producer: Any = None  # started at the first commit that needs it
        # (topic, a batch's delivery future, its record count)
        self._inflight: list[tuple[str, asyncio.Future, int]] = []
        # Topics whose acknowledged offsets matter (the tables' changelogs: stream/state.py),
        # and who hears about them once everything sent before a commit is acknowledged.
        self.tracked: set[str] = set()
        self.delivered: Delivered = {}
        self.on_settled: list[Callable[[Delivered], None]] = []
        # The tables' checkpoints (PartitionedTable.checkpoint): their changes are sent
        # before anything is awaited, so a commit never covers input whose state is unsent.
        self.checkpoints: list[Callable[[], Awaitable[int]]] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None,
            partition: int | None = None) -> None:
        """Queue one record; ``partition=None`` partitions by ``key`` (murmur2, as faust does).
        A changelog record (a ``tracked`` topic) waits for the next :meth:`settle`."""
        (self._changelog if topic in self.tracked else self._pending).append(
            (topic, key, value, partition))

    async def flush(self) -> None:
        """Send everything queued but the changelog records (:meth:`settle` sends those), one
        record batch per topic and partition.

        aiokafka's ``send`` costs ~25 us a record in Python (metadata wait, partitioner,
        a future per record); a batch built here costs ~10 (measured against the local
        broker, 100,000 records of a score's size). Records keep their order within a
        partition, and each partition's batches are submitted in order. A flush does not yield
        between records: with a yield every 512, the first seconds of the bench's first load
        were slow in six runs of six (p99 148-197 ms at 500 tx/s), without it 89 ms in the
        one run there was time for. Flushes are not serialised: aiokafka holds
        a partition's next batch until the one before is sent, and a lock would make the
        score agent's flush wait for a settle's, partition after partition (a broker round
        trip each). Two concurrent flushes never hold the same key's records: scores,
        snapshots and terminal events come from one agent.
        """
        pending, self._pending = self._pending, []
        if pending:
            # faust's aiokafka AIOKafkaProducer
            await self._send_all(self._app.producer._ensure_producer(), pending)

    async def _flush_changelog(self) -> None:
        """Send the checkpoints' changelog records on the changelog producer."""
        pending, self._changelog = self._changelog, []
        if not pending:
            return
        if self._changelog_producer is None:
            self._changelog_producer = await self._start_changelog_producer(pending[0][0])
        await self._send_all(self._changelog_producer, pending)

    async def _start_changelog_producer(self, topic: str) -> Any:
        """Start the changelog producer (faust's settings and credentials); while the broker
        cannot be reached, try again every second for as long as faust's own producer rides
        out an outage (``producer_request_timeout``): a first commit during a broker restart
        must wait for it, as the scores' sends do, not stop the worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self._app.conf.producer_request_timeout)
        while True:
            producer = self._app.producer._new_producer()
            try:
                await producer.start()
                return producer
            except Exception as exc:
                try:
                    await producer.stop()
                except Exception:  # nothing was started; nothing to clean up
                    pass
                if loop.time() >= deadline:
                    self.undeliverable(topic, exc)
                log.warning("the changelog producer cannot reach the broker yet (%s: %s); "
                            "trying again in 1 s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Stop the changelog producer (after the last settle: the worker is stopping)."""
        producer, self._changelog_producer = self._changelog_producer, None
        if producer is not None:
            await producer.stop()

    async def _send_all(self, producer: Any, pending: list) -> None:
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        counts: dict[str, int] = {}
        for topic, key, value, partition in pending:
            if partition is None:
                n = counts.get(topic)
                if n is None:
                    n = counts[topic] = await self._partition_count(producer, topic)
                # aiokafka's default partitioner: murmur2 of the key, else any partition.
                partition = key_partition(key, n) if key is not None else random.randrange(n)
            by_partition.setdefault((topic, partition), []).append((key, value))
        for (topic, partition), records in by_partition.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    await self._submit(producer, batch, topic, partition)
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)  # a first one always fits
            await self._submit(producer, batch, topic, partition)
        if len(self._inflight) > self._HARVEST_AT:
            self._harvest()

    async def _partition_count(self, producer: Any, topic: str) -> int:
        try:
            return len(await producer.partitions_for(topic))
        except Exception as exc:  # no metadata for the topic within the request timeout
            self.undeliverable(topic, exc)

    async def _submit(self, producer: Any, batch: Any, topic: str, partition: int) -> None:
        try:
            future = await producer.send_batch(batch, topic, partition=partition)
        except Exception as exc:  # not even queued (no room past its timeout, closed...)
            self.undeliverable(topic, exc)
        self._inflight.append((topic, future, batch.record_count()))

    def _harvest(self) -> None:
        """Drop delivered futures between commits (a long stretch without one grows the list)."""
        still = []
        for topic, fut, count in self._inflight:
            if not fut.done():
                still.append((topic, fut, count))
            elif fut.cancelled() or fut.exception() is not None:
                self.undeliverable(topic, fut.exception() or asyncio.CancelledError())
            elif topic in self.tracked:
                self._note(fut.result(), count)
        self._inflight = still

    def _note(self, metadata: Any, count: int) -> None:
        """A batch of ``count`` records was acknowledged from ``metadata.offset`` (its first)."""
        tp = (metadata.topic, metadata.partition)
        last = metadata.offset + count - 1
        if last > self.delivered.get(tp, -1):
            self.delivered[tp] = last

    async def settle(self) -> None:
        """Checkpoint the tables, send what is queued, and wait until everything sent so far
        is acknowledged; stop the worker if it is not."""
        for checkpoint in self.checkpoints:
            await checkpoint()
        await self.flush()
        await self._flush_changelog()
        inflight, self._inflight = self._inflight, []
        tracked = self.tracked
        for topic, fut, count in inflight:
            try:
                metadata = await fut
            except Exception as exc:
                self.undeliverable(topic, exc)
            if topic in tracked:
                self._note(metadata, count)
        if self.delivered:
            delivered, self.delivered = self.delivered, {}
            for hook in self.on_settled:
                try:
                    hook(delivered)
                except Exception:  # bookkeeping: a failure costs recovery time, not the commit
                    log.exception("recording delivered offsets failed")

    def undeliverable(self, topic: str, exc: BaseException) -> NoReturn:
        log.critical(
            "a record for topic %s could not be delivered (%s: %s) after the producer's "
            "retries; stopping this worker with status %d before any offset past it is "
            "committed, so its input is processed again after a restart. Check the broker "
            "and the topic (exists, writable, max.message.bytes, ACLs).",
            topic, type(exc).__name__, exc, self.EXIT_UNDELIVERABLE)
        # not faust's crash path: nothing may commit after this
        flush_logs_and_exit(self.EXIT_UNDELIVERABLE)


class SettledApp(faust.App):
    """A faust app whose consumer delivers no record while it seeks back to committed offsets.

    After a rebalance, faust's table recovery resumes the stream partitions and then seeks them
    to their committed offsets with the fetcher running (faust-streaming issue 596). Records
    fetched meanwhile reach the streams while the seek rewinds the consumer's read offsets under
    them: some are dropped as already read, a jump past others counts as a gap in the partition
    (acknowledged), and resuming flow control right after the seek clears the queued ones. Such
    a record is never processed, its offset is committed all the same, and the refetch skips it:
    its transactions never got a score. With the flow stopped for the seek nothing is delivered
    until faust resumes it, after clearing the queues, from the committed offsets.

    It also commits offsets only after the :class:`Outbox` has settled: every record produced
    so far is acknowledged by the broker, or the worker stops (see :meth:`Outbox.settle`);
    and its fetch loop races each fetched batch, not each record, against a flow stop
    (stream/fetch_loop.py).
    """

    outbox: "Outbox | None" = None
    #: The topics the agents consume (the worker sets them).
    stream_topics: frozenset[str] = frozenset()
    #: faust's consumer thread instead of the worker's loop (``kafka_consumer_thread``).
    consumer_thread: bool = False

    async def on_stop(self) -> None:
        await super().on_stop()  # stops the consumer: its last commit settles the Outbox
        if self.outbox is not None:
            await self.outbox.close()

    @property
    def consumer_in_thread(self) -> bool:
        """Whether the consumer runs in faust's thread: where asked, and on a faust the loop
        consumer was not checked against (stream/loop_consumer.py)."""
        return self.consumer_thread or not loop_consumer.supported()

    def _new_consumer(self) -> Any:
        if self.consumer_in_thread:
            if not self.consumer_thread:
                log.warning("faust-streaming %s: its consumer keeps its own thread "
                            "(stream/loop_consumer.py was checked against 0.15)",
                            faust.__version__)
            consumer = super()._new_consumer()
        else:  # faust's own, minus the thread (stream/loop_consumer.py)
            consumer = loop_consumer.LoopConsumer(
                self.transport, callback=self.topics.on_message, loop=self.transport.loop,
                on_partitions_revoked=self._on_partitions_revoked,
                on_partitions_assigned=self._on_partitions_assigned, beacon=self.beacon)
        seek = consumer.perform_seek
        commit_offsets = consumer._commit_offsets

        async def perform_seek() -> None:
            consumer.stop_flow()  # a no-op for the fetch loop's own seek, which runs stopped
            await seek()
            await self._rewind_uncommitted(consumer)

        async def settled_commit_offsets(offsets: Any, start_new_transaction: bool = True) -> bool:
            if self.outbox is not None:
                await self.outbox.settle()
            return await commit_offsets(offsets, start_new_transaction=start_new_transaction)

        consumer.perform_seek = perform_seek
        consumer._commit_offsets = settled_commit_offsets
        fetch_loop.install(consumer)
        livelock_guard.install(consumer)
        return consumer

    async def _rewind_uncommitted(self, consumer: Any) -> None:
        """Send partitions with no committed offset back to their start.

        The seek to committed offsets leaves a partition without one (nothing committed yet)
        where its fetch got to, past records fetched during recovery and dropped with the
        queues: the first label sent while a restarted worker recovered was never processed
        (measured). With no commit, ``auto_offset_reset=earliest`` means the start: go there.
        """
        committed = consumer._committed_offset
        uncommitted = [tp for tp in consumer.assignment()
                       if tp.topic in self.stream_topics and committed.get(tp) is None]
        if uncommitted:
            from aiokafka import TopicPartition

            # faust's consumer delegates to aiokafka's through consumer._thread (a thread of
            # its own, or stream/loop_consumer.py's service on this loop).
            await consumer._thread.seek_to_beginning(*(TopicPartition(tp.topic, tp.partition)
                                                       for tp in uncommitted))
            for tp in uncommitted:
                consumer._read_offset[tp] = None


def worker_faust_app(s: Settings, app_id: str | None = None,
                     state_dir: Path | None = None) -> SettledApp:
    """A worker process's faust app (``app_id``, default the settings'; local state under
    ``state_dir``, default the worker's): RocksDB tables, offsets committed once the Outbox
    is settled."""
    datadir = (state_dir or s.worker_state_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = SettledApp(
        app_id or s.app_id,
        broker=s.faust_broker,
        broker_credentials=faust_credentials(s),
        # RocksDB tables with persisted changelog offsets (stream/state.py).
        store="rocksdb://",
        datadir=str(datadir),
        table_standby_replicas=s.standby_replicas,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=max(1.0, s.session_timeout_s / 5),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        consumer_auto_offset_reset="earliest",
        # A group that formed while the broker's metadata lacked its topics (a process that
        # joined right after a broker restart) holds an empty assignment until the next
        # refresh notices them: 30 s, not the default 5 minutes (seen in a CI run).
        consumer_metadata_max_age_ms=30_000,
        broker_commit_interval=s.commit_interval_s,
        # Commits come from faust's timer only (every commit_interval_s, a task of its own).
        # faust also commits every 10,000 acknowledged records (broker_commit_every), and does
        # that inside the fetch loop: no record reached the agents while the commit settled
        # (the tables' checkpoint, every record sent acknowledged), 30-70 ms every 5 s at
        # 2,000 tx/s, the periodic episodes of the bench's tail (issue 13, stop 32's note).
        broker_commit_every=_NEVER,
        producer_linger=0.005,
        # aiokafka keeps one request in flight per broker, and an agent whose record does
        # not fit the partition's open batch waits for that batch to be sent; 16 KiB (the
        # default) holds nine pending snapshots. Well under a topic's 1 MB default.
        producer_max_batch_size=256 * 1024,
        producer_acks=-1,
        stream_buffer_maxsize=8192,
        table_cleanup_interval=3600,
        logging_config=None,
    )
    app.consumer_thread = s.kafka_consumer_thread
    return app
