"""The worker's fetch loop (stream/fetch_loop.py) on faust's real consumer, without Kafka:
the fetched records are given to it as ``getmany`` would, and what it delivers is recorded."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP
from mode.utils.locks import Event

from fraudstream.stream.app import build_app
from fraudstream.stream.config import load_settings


def _consumer(tmp_path):
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path,
                             state_dir=tmp_path / "state", metrics_port=0)
    return build_app(settings).app.consumer, TP(settings.topics.transactions, 0)


def _run(consumer, batches, on_delivered=None):
    """Run the loop over ``batches`` (lists of offsets), then stop it; returns what it delivered."""
    fetcher = SimpleNamespace(_stopped=Event())
    delivered = []

    async def getmany(timeout):
        if not batches:
            fetcher._stopped.set()  # everything fetched: end the loop
            return
        for tp, offset in batches.pop(0):
            yield tp, SimpleNamespace(offset=offset, topic=tp.topic)

    async def callback(message):
        delivered.append(message.offset)
        if on_delivered is not None:
            await on_delivered(message)

    consumer.getmany = getmany
    consumer.callback = callback

    # On the app's own loop, where faust's services make their tasks.
    consumer.loop.run_until_complete(asyncio.wait_for(consumer._drain_messages(fetcher), 10))
    return delivered


def test_records_are_delivered_in_order_once_and_marked_read(tmp_path):
    consumer, tp = _consumer(tmp_path)
    consumer.resume_flow()
    batches = [[(tp, o) for o in range(0, 250)], [(tp, o) for o in range(240, 300)]]
    delivered = _run(consumer, batches)
    # Records fetched again below the last one read (240..248) are not delivered again;
    # faust's rule delivers from the last read offset on (>=), so 249 comes twice, as there.
    assert delivered == list(range(250)) + list(range(249, 300))
    assert consumer._read_offset[tp] == 299


def test_a_flow_stop_stops_the_batch_where_it_stands(tmp_path):
    consumer, tp = _consumer(tmp_path)
    consumer.resume_flow()

    async def stop_at_ten(message):
        if message.offset == 10:  # a rebalance begins while record 10 is delivered
            consumer.suspend_flow.set()
            await asyncio.sleep(0.05)  # blocked, as on a full stream buffer

    delivered = _run(consumer, [[(tp, o) for o in range(100)]], stop_at_ten)
    assert delivered == list(range(11))  # nothing after the stop
    assert consumer._read_offset[tp] == 9  # record 10 was never finished: not marked read


def test_the_loop_is_installed_only_on_the_faust_it_was_checked_against(tmp_path, monkeypatch):
    import faust

    from fraudstream.stream import fetch_loop

    consumer, _ = _consumer(tmp_path)
    assert consumer._drain_messages.__module__ == fetch_loop.__name__  # faust 0.15 here
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    consumer, _ = _consumer(tmp_path)
    assert consumer._drain_messages.__module__ != fetch_loop.__name__


def test_a_flow_stop_during_a_fetch_does_not_cancel_the_fetch(tmp_path):
    # A fetch cancelled half way loses what it took from the client, and nothing marks the
    # hole: the next fetch's records look like a gap and faust acks it (lost scores, seen in
    # the rebalance test with a loop that raced the fetch too). The fetch runs to its end.
    consumer, tp = _consumer(tmp_path)
    consumer.resume_flow()
    fetcher = SimpleNamespace(_stopped=Event())
    fetches, delivered = [], []

    async def getmany(timeout):
        if fetches:
            fetcher._stopped.set()
            return
        fetches.append("started")
        consumer.suspend_flow.set()  # a rebalance begins while the client fetches
        await asyncio.sleep(0.05)
        for offset in range(5):
            yield tp, SimpleNamespace(offset=offset, topic=tp.topic)
        fetches.append("finished")

    async def callback(message):
        delivered.append(message.offset)

    consumer.getmany, consumer.callback = getmany, callback
    consumer.loop.run_until_complete(asyncio.wait_for(consumer._drain_messages(fetcher), 10))
    assert fetches == ["started", "finished"]
    # As in faust's loop, a delivery that does not block finishes even after a flow stop
    # (the race only interrupts one blocked on a full buffer), and is marked read.
    assert delivered == list(range(5)) and consumer._read_offset[tp] == 4


def test_the_fetch_loop_never_commits_on_a_record_count(tmp_path):
    """faust commits every ``broker_commit_every`` acknowledged records from inside the fetch
    loop, which holds every delivery until the commit settles (30-70 ms every 5 s at 2,000
    tx/s); the worker's commits come from the interval timer only."""
    consumer, tp = _consumer(tmp_path)
    consumer.resume_flow()
    commits = []

    async def commit(*args, **kwargs):
        commits.append(consumer._n_acked)
        return True

    consumer.commit = commit
    consumer._n_acked = 1_000_000  # far past faust's default of 10,000
    delivered = _run(consumer, [[(tp, o) for o in range(0, 100)], [(tp, o) for o in range(100, 200)]])
    assert delivered == list(range(200))
    assert commits == []
