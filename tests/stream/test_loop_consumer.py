"""faust's consumer on the worker's own loop (stream/loop_consumer.py), against the real broker.

The service's whole life here: started without a thread, called both ways (plain functions and
coroutines, as faust's driver calls them), stopped at once with aiokafka's consumer closed.
The rebalance, recovery and end-to-end tests run every worker on it (it is the default).
"""

from __future__ import annotations

import asyncio
import threading
import time

from aiokafka import TopicPartition
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from mode.threads import WorkerThread

from fraudstream.stream.app import build_app
from fraudstream.stream.loop_consumer import LoopConsumer
from fraudstream.stream.topics import create_topics

from ..kafka_helpers import produce_raw


def _consumer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, WorkerThread)]


def test_the_consumer_starts_serves_and_stops_on_the_workers_loop(settings):
    create_topics(settings)
    topic = settings.topics.transactions
    produce_raw(settings, topic, [(b"card-1", b"{}")] * 3)

    async def scenario():
        consumer = build_app(settings).app.consumer
        assert isinstance(consumer, LoopConsumer)
        service = consumer._thread
        assert service.thread_loop is asyncio.get_running_loop()
        await service.start()
        try:
            assert _consumer_threads() == [] and service._thread is None
            # a coroutine call and a plain-function call, as faust's driver makes them
            tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
            high = await service.highwaters(*tps)
            await service.subscribe([topic])
            assert service.assignment() == set()  # subscribed, not yet joined: no partitions
        finally:
            started = time.monotonic()
            await service.stop()
            stop_s = time.monotonic() - started
        return high, stop_s, service._consumer._closed

    high, stop_s, closed = asyncio.run(scenario())
    assert sum(high.values()) == 3  # the records produced, seen through the broker
    # stopped by itself, not after mode's wait for a thread's shutdown event (timed out)
    assert stop_s < 5.0 and closed


def test_faust_s_consumer_thread_where_the_setting_asks_for_it(settings):
    async def consumer_of(s):
        return build_app(s).app.consumer

    threaded = asyncio.run(consumer_of(settings.model_copy(update={"kafka_consumer_thread": True})))
    assert isinstance(threaded, FaustConsumer) and not isinstance(threaded, LoopConsumer)
    assert threaded._thread.thread_loop is not threaded.loop
