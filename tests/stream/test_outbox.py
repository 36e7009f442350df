"""The Outbox against the real broker: records land where and in the order aiokafka's own
``send`` would put them, and the offsets it reports delivered are the last ones written."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from fraudstream.stream.outbox import Outbox
from fraudstream.stream.stages import key_partition
from kafka_helpers import read_topic

pytestmark = [pytest.mark.kafka]


def _create(settings, *topics: str, partitions: int = 4) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        admin.close()


async def _send_through_outbox(settings, queued: list[list[tuple]], tracked: str) -> dict:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=-1,
                                max_batch_size=16 * 1024)  # small: some flushes need several batches
    await producer.start()
    try:
        app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
        outbox = Outbox(app)
        outbox.tracked.add(tracked)
        settled: list[dict] = []
        outbox.on_settled.append(settled.append)
        for flush in queued:
            for record in flush:
                outbox.add(*record)
            await outbox.flush()
        await outbox.settle()
        return {k: v for d in settled for k, v in d.items()}
    finally:
        await producer.stop()


def test_records_keep_their_partition_and_order_and_delivered_offsets_are_the_last(settings):
    keyed, explicit = f"keyed-{settings.app_id}", f"explicit-{settings.app_id}"
    _create(settings, keyed, explicit)
    value = b"x" * 700  # 16 KiB batches: a flush of 100 to one partition takes several
    flushes = []
    for f in range(5):
        flush = [(keyed, f"card-{i % 37}".encode(), b"%d|%d|" % (f, i) + value) for i in range(300)]
        flush += [(explicit, None, b"%d|%d" % (f, i), i % 4) for i in range(100)]
        flush += [(keyed, None, b"unkeyed %d" % f)]  # any partition, as aiokafka's send
        flushes.append(flush)
    delivered = asyncio.run(_send_through_outbox(settings, flushes, tracked=explicit))

    records = read_topic(settings, keyed, lambda r: len(r) >= 1505)
    assert len(records) == 1505
    seen: dict[bytes, list[bytes]] = {}
    for r in records:
        if r.key is not None:
            assert r.partition == key_partition(r.key, 4)  # aiokafka's DefaultPartitioner
            seen.setdefault(r.key, []).append(r.value.split(b"|")[0] + b"|" + r.value.split(b"|")[1])
    for key, values in seen.items():  # each key's records in the order they were added
        i = int(key.split(b"-")[1])
        assert values == [b"%d|%d" % (f, j) for f in range(5) for j in range(i, 300, 37)]

    written = read_topic(settings, explicit, lambda r: len(r) >= 500)
    by_partition: dict[int, list] = {}
    for r in written:
        by_partition.setdefault(r.partition, []).append(r)
    for p, rs in by_partition.items():
        assert [r.value for r in rs] == [b"%d|%d" % (f, i) for f in range(5)
                                         for i in range(p, 100, 4)]
        # What the changelog bookkeeping is told: the last offset of each partition.
        assert delivered[(explicit, p)] == rs[-1].offset
    assert all(topic == explicit for topic, _ in delivered)
