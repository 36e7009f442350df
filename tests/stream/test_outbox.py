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


def _producer(settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks=-1,
                            max_batch_size=16 * 1024)  # small: some flushes need several batches


def _app(settings, producer: AIOKafkaProducer) -> SimpleNamespace:
    """What the Outbox uses of faust's app: its started producer, new ones like it, and how
    long its producer rides out an outage (faust's default)."""
    return SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer,
                                                    _new_producer=lambda: _producer(settings)),
                           conf=SimpleNamespace(producer_request_timeout=1200.0))


async def _send_through_outbox(settings, queued: list[list[tuple]], tracked: str) -> dict:
    producer = _producer(settings)
    await producer.start()
    outbox = Outbox(_app(settings, producer))
    try:
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
        await outbox.close()
        await producer.stop()


def _count(settings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_changelog_records_wait_for_the_settle_and_leave_on_a_producer_of_their_own(settings):
    """The agent's flush must not queue score batches behind a commit's changelog: those
    records stay out of it and go, at the settle, through a second producer (connection)."""
    scores, changelog = f"scores-{settings.app_id}", f"changelog-{settings.app_id}"
    _create(settings, scores, changelog)

    async def run() -> tuple[int, int, int, int, dict, bool]:
        producer = _producer(settings)
        await producer.start()
        outbox = Outbox(_app(settings, producer))
        outbox.tracked.add(changelog)
        settled: list[dict] = []
        outbox.on_settled.append(settled.append)
        try:
            for i in range(50):
                outbox.add(changelog, b"card-%d" % i, b"state %d" % i, i % 4)
                outbox.add(scores, b"card-%d" % i, b"score %d" % i)
            await outbox.flush()
            await producer.flush()
            after_flush = (_count(settings, scores), _count(settings, changelog))
            await outbox.settle()
            own = outbox._changelog_producer not in (None, producer)
            after_settle = (_count(settings, scores), _count(settings, changelog))
        finally:
            await outbox.close()
            await producer.stop()
        return (*after_flush, *after_settle, settled[-1], own)

    s1, c1, s2, c2, delivered, own = asyncio.run(run())
    assert (s1, c1) == (50, 0)  # the flush sent the scores only
    assert (s2, c2) == (50, 50) and own  # the settle sent the changelog, on its own producer
    assert sorted(delivered) == [(changelog, p) for p in range(4)]
    # the last offsets: 50 records over 4 partitions are 13, 13, 12 and 12
    assert delivered == {(changelog, 0): 12, (changelog, 1): 12, (changelog, 2): 11,
                         (changelog, 3): 11}


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


class _FlakyStart:
    """A producer whose start fails (``fail``) as against a broker being restarted."""

    def __init__(self, log: list, fail: bool) -> None:
        self.log, self.fail = log, fail

    async def start(self) -> None:
        self.log.append("start")
        if self.fail:
            raise ConnectionError("Unable to bootstrap")

    async def stop(self) -> None:
        self.log.append("stop")


@pytest.mark.parametrize("timeout_s, started", [(60.0, True), (0.0, False)])
def test_the_changelog_producer_waits_for_an_unreachable_broker(timeout_s, started):
    log: list[str] = []
    attempts = iter([True, True, False])  # two failed starts, then the broker is back
    app = SimpleNamespace(producer=SimpleNamespace(
        _new_producer=lambda: _FlakyStart(log, next(attempts))),
        conf=SimpleNamespace(producer_request_timeout=timeout_s))
    outbox = Outbox(app)

    def undeliverable(topic, exc):
        raise RuntimeError(f"undeliverable {topic}: {exc}")

    outbox.undeliverable = undeliverable
    if started:
        producer = asyncio.run(outbox._start_changelog_producer("t-changelog"))
        assert isinstance(producer, _FlakyStart) and log == ["start", "stop"] * 2 + ["start"]
    else:  # past faust's request timeout: the worker stops rather than commit
        with pytest.raises(RuntimeError, match="undeliverable t-changelog: Unable to bootstrap"):
            asyncio.run(outbox._start_changelog_producer("t-changelog"))
        assert log == ["start", "stop"]
