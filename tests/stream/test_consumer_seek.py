"""The worker's consumer around a rebalance, without Kafka (stream/outbox.py's SettledApp)."""

import asyncio
import time
from types import SimpleNamespace

from faust.types import TP

from fraudstream.stream.app import build_app
from fraudstream.stream.config import load_settings


def test_no_record_is_delivered_while_the_consumer_seeks_back_to_committed_offsets(tmp_path):
    # faust's table recovery resumes the stream partitions, then seeks them with the fetcher
    # running: records delivered during that seek could be lost (issue 3). The fetch loop only
    # delivers while the flow is active, so the seek must find it stopped; faust resumes it.
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path,
                             state_dir=tmp_path / "state", metrics_port=0,
                             label_process="inline")  # one consumer for both topics
    consumer = build_app(settings).app.consumer
    flow_during_seek = []
    rewound = []
    labels, transactions = TP(settings.topics.labels, 3), TP(settings.topics.transactions, 3)

    async def seek_to_committed():
        flow_during_seek.append(consumer.flow_active)
        return {transactions: 120}  # nothing committed for the labels partition yet

    async def seek_to_beginning(*tps):
        rewound.extend(tps)

    consumer.seek_to_committed = seek_to_committed
    consumer.assignment = lambda: {labels, transactions, TP("some-changelog", 3)}
    consumer._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)
    consumer._read_offset[labels] = 7  # fetched during recovery, then dropped with the queues
    consumer.resume_flow()  # as recovery leaves it after reading the changelogs
    asyncio.run(consumer.perform_seek())
    assert flow_during_seek == [False]
    # The partition without a committed offset goes back to its start (auto_offset_reset
    # earliest), or the records fetched during recovery would never be processed.
    assert [(tp.topic, tp.partition) for tp in rewound] == [(labels.topic, 3)]
    assert consumer._read_offset[labels] is None


def test_the_livelock_check_skips_a_partition_whose_position_is_being_reset(tmp_path):
    # faust's livelock detector read aiokafka's position of every assigned partition, which
    # asserts it is known: right after the rewind above (seek_to_beginning) it is not, and the
    # AssertionError crashed a worker in CI (stream/livelock_guard.py). faust's own check runs
    # here on a real aiokafka subscription state: the consumer's thread is faust's, its
    # aiokafka consumer a stand-in holding that state.
    from aiokafka import TopicPartition
    from aiokafka.consumer.subscription_state import SubscriptionState

    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path,
                             state_dir=tmp_path / "state", metrics_port=0)
    consumer = build_app(settings).app.consumer
    tp = TP(settings.topics.transactions, 0)

    async def check() -> None:  # aiokafka's subscription state needs a running loop
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({TopicPartition(tp.topic, 0)})
        state = subscriptions.subscription.assignment.state_value(TopicPartition(tp.topic, 0))
        thread = consumer._thread
        thread._ensure_consumer = lambda: SimpleNamespace(_fetcher=SimpleNamespace(
            _subscriptions=subscriptions))
        thread.time_started = time.monotonic()
        now = thread.time_started + 1.0
        state.highwater, state.timestamp = 500, now * 1000  # fetched from, just now (ms)

        state.await_reset(0)  # what seek_to_beginning does: no position until the fetcher resets
        consumer.verify_event_path(now, tp)  # raised AssertionError before the guard
        try:
            thread.verify_event_path(now, tp)  # faust's own, unguarded
        except AssertionError:
            pass
        else:
            raise AssertionError("faust's check no longer trips on an unpositioned partition: "
                                 "stream/livelock_guard.py may be obsolete")

        checked = []
        thread.verify_event_path = lambda now, tp: checked.append(tp)
        consumer.verify_event_path(now, tp)
        assert checked == []
        state.reset_to(0)  # the fetcher found the offset: the partition is checked again
        consumer.verify_event_path(now, tp)
        assert checked == [tp]

    asyncio.run(check())
