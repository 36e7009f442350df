"""The tables' local state without Kafka: RocksDB writes, sizes, persisted changelog offsets."""

import asyncio
import gc

from faust.types import TP

from fraudstream.stream.app import build_app
from fraudstream.stream.config import load_settings
from fraudstream.stream.state import _CHECKPOINT_CHUNK, dumps


def _pending(settings):
    worker = build_app(settings, role="label")
    pending = worker.joiner.pending
    sent = []
    pending._send = lambda *record: sent.append(record)  # the Outbox's add, recorded
    pending.on_recovered({0, 1})  # as after faust's recovery, with partitions 0 and 1 ours
    return pending, sent


def _close(table):
    table.table.data._dbs.clear()  # what faust does on stop: the handles go, RocksDB unlocks
    gc.collect()


def test_a_table_writes_rocksdb_and_its_changelog_and_a_new_process_reads_it_back(tmp_path):
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0)
    pending, sent = _pending(settings)
    snap = {"tx_id": "tx1", "partition": 0, "event_ts": 1.5}
    pending.put(0, "tx1", snap)
    pending.put(1, "tx2", {"tx_id": "tx2", "partition": 1, "event_ts": 2.0})
    pending.put(0, "tx1", {**snap, "event_ts": 1.75})  # an update: the size stays
    assert len(pending) == 2 and not sent  # nothing is written before a checkpoint
    assert asyncio.run(pending.checkpoint()) == 2  # each key once, with its last value
    assert [(topic, partition, value) for topic, _, value, partition in sent] == [
        (pending.changelog, 0, dumps({**snap, "event_ts": 1.75})),
        (pending.changelog, 1, dumps({"tx_id": "tx2", "partition": 1, "event_ts": 2.0}))]
    sent.clear()
    pending.delete(1, "tx2")
    assert len(pending) == 1 and pending.get(1, "tx2") is None
    assert asyncio.run(pending.checkpoint()) == 1
    assert [(partition, value) for _, _, value, partition in sent] == [(1, None)]  # a tombstone

    # Acknowledged changelog offsets become faust's persisted offsets, for owned partitions only.
    pending.persist_offsets({(pending.changelog, 0): 41, (pending.changelog, 5): 9,
                             ("another-changelog", 1): 3})
    store = pending.table.data
    assert store.persisted_offset(TP(pending.changelog, 0)) == 41
    assert store.persisted_offset(TP(pending.changelog, 1)) is None
    _close(pending)

    # A restarted worker (same state folder) has it all without reading any changelog.
    again, _ = _pending(settings)
    assert len(again) == 1
    assert again.get(0, "tx1") == {**snap, "event_ts": 1.75}
    assert dict(again.items()) == {"tx1": {**snap, "event_ts": 1.75}}
    assert again.table.data.persisted_offset(TP(again.changelog, 0)) == 41
    _close(again)


def test_card_states_are_cached_up_to_the_bound_and_pending_snapshots_not_at_all(tmp_path):
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0,
                             card_cache_per_partition=3, label_process="inline")
    worker = build_app(settings)
    cards, pending = worker.cards, worker.joiner.pending
    for table in (cards, pending):
        table._send = lambda *record: None
        table.on_recovered({0})
    for i in range(5):
        cards.put(0, f"c{i}", {"offset": i})
        pending.put(0, f"t{i}", {"tx_id": f"t{i}"})
    asyncio.run(cards.checkpoint())
    asyncio.run(pending.checkpoint())
    cards.put(0, "c1", {"offset": 10})  # written again: the most recent now
    asyncio.run(cards.checkpoint())
    assert list(cards._cache[0]) == ["c3", "c4", "c1"]  # c0 and c2 evicted, oldest first
    assert not pending._cache.get(0)  # a snapshot is read once: never cached
    # evicted or uncached, every value is still read back from RocksDB
    assert [cards.get(0, f"c{i}")["offset"] for i in range(5)] == [0, 10, 2, 3, 4]
    assert pending.get(0, "t2") == {"tx_id": "t2"} and len(pending) == 5
    pending.delete(0, "t2")
    assert pending.get(0, "t2") is None and len(pending) == 4
    asyncio.run(pending.checkpoint())
    assert pending.get(0, "t2") is None and len(pending) == 4
    assert len(cards._cache[0]) == 3
    _close(cards)
    _close(pending)


def test_a_worker_is_a_scoring_app_and_a_label_app_each_with_its_own_tables_and_group(tmp_path):
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0, app_id="fs")
    score, label = build_app(settings), build_app(settings, role="label")
    assert (score.app.conf.id, label.app.conf.id) == ("fs", "fs-labels")
    assert score.cards is not None and score.joiner is None and score.feed is not None
    assert label.cards is None and label.joiner is not None and label.feed is None
    assert score.app.stream_topics == {settings.topics.transactions}
    assert label.app.stream_topics == {settings.topics.labels, "fs-snapshots"}
    assert label.app.conf.datadir != score.app.conf.datadir  # two RocksDB folders
    inline = build_app(settings.model_copy(update={"label_process": "inline", "app_id": "fi"}))
    assert inline.cards is not None and inline.joiner is not None
    assert inline.app.stream_topics == {settings.topics.transactions, settings.topics.labels}
    for worker in (score, label, inline):
        for table in worker.tables:
            _close(table)


def test_a_key_put_and_deleted_between_checkpoints_is_never_written(tmp_path):
    """A snapshot joined with its label within a commit interval costs no RocksDB write and no
    changelog record; one that was checkpointed gets its tombstone."""
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0)
    pending, sent = _pending(settings)
    pending.put(0, "kept", {"tx_id": "kept"})
    asyncio.run(pending.checkpoint())
    sent.clear()
    pending.put(0, "joined", {"tx_id": "joined"})
    pending.delete(0, "joined")
    pending.put(0, "again", {"tx_id": "again"})
    pending.delete(0, "again")
    pending.put(0, "again", {"tx_id": "again", "n": 2})  # back after its delete: new again
    pending.delete(0, "kept")
    assert pending.pop(0, "never-there") is None and pending.pop(1, "joined") is None
    assert len(pending) == 1 and pending.get(0, "joined") is None
    assert dict(pending.items([0])) == {"again": {"tx_id": "again", "n": 2}}
    assert asyncio.run(pending.checkpoint()) == 2
    assert sorted((key, value) for _, key, value, _ in sent) == [
        (dumps("again"), dumps({"tx_id": "again", "n": 2})), (dumps("kept"), None)]
    assert pending._db(0).get(dumps("joined")) is None and pending._db(0).get(dumps("kept")) is None
    pending.on_recovered({0, 1})  # a recount from RocksDB agrees
    assert len(pending) == 1
    _close(pending)


def test_a_checkpoint_writes_the_state_as_it_was_when_it_began(tmp_path):
    """The stages change a card's state object in place; a checkpoint that yields to the loop
    half way must not write a newer state under an older offset (a replay would add a
    transaction twice): values are written as they were put, and reads during the checkpoint
    see every value, written yet or not."""
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0,
                             card_cache_per_partition=10)
    worker = build_app(settings)
    cards, sent = worker.cards, []
    cards._send = lambda *record: sent.append(record)
    cards.on_recovered({0})
    states = {f"c{i}": {"offset": i, "events": [i]} for i in range(600)}
    for key, value in states.items():
        cards.put(0, key, value)

    async def checkpoint_while_scoring():
        task = asyncio.create_task(cards.checkpoint())
        await asyncio.sleep(0)  # the checkpoint has written a first chunk and yielded
        assert not task.done() and cards._flushing
        assert all(cards.get(0, key) == value for key, value in states.items())
        states["c599"]["events"].append(1000)  # a stage changes an object in place ...
        cards.put(0, "c599", {**states["c599"], "offset": 1000})  # ... and puts it again
        return await task

    assert asyncio.run(checkpoint_while_scoring()) == 600
    assert dict((k, v) for _, k, v, _ in sent)[dumps("c599")] == dumps({"offset": 599,
                                                                          "events": [599]})
    assert cards.get(0, "c599")["offset"] == 1000  # the newer value waits for the next one
    sent.clear()
    assert asyncio.run(cards.checkpoint()) == 1 and len(sent) == 1
    cards.forget({0})
    assert cards.get(0, "c599")["events"] == [599, 1000]  # from RocksDB
    _close(cards)


def test_a_revoke_waits_for_the_checkpoint_in_progress_and_then_forgets(tmp_path):
    """faust's rebalance does not wait for a commit: a checkpoint that yields between chunks
    may see its partitions revoked half way. The revoke waits until the checkpoint has written
    them (the group reassigns them only after it returns), then drops the newer changes; a
    partition forgotten during a checkpoint anyway (a recovery) is not written further."""
    settings = load_settings(broker_url="kafka://127.0.0.1:9", model_registry=tmp_path / "reg",
                             state_dir=tmp_path / "state", metrics_port=0)
    cards, sent = build_app(settings).cards, []
    cards._send = lambda *record: sent.append(record)
    cards.on_recovered({0, 1})
    for i in range(600):
        cards.put(0, f"c{i}", {"offset": i})

    async def revoke_during_checkpoint():
        task = asyncio.create_task(cards.checkpoint())
        await asyncio.sleep(0)  # a first chunk written
        assert not task.done() and 0 < len(sent) < 600
        cards.put(0, "late", {"offset": 1000})  # after the checkpoint began: not in it
        await cards.revoke({0})
        assert task.done() and len(sent) == 600  # the whole checkpoint, then the revoke
        return await task

    assert asyncio.run(revoke_during_checkpoint()) == 600
    assert cards.get(0, "late") is None and asyncio.run(cards.checkpoint()) == 0

    sent.clear()
    for i in range(600):
        cards.put(1, f"d{i}", {"offset": i})

    async def forget_during_checkpoint():
        task = asyncio.create_task(cards.checkpoint())
        await asyncio.sleep(0)
        cards.forget({1})
        return await task

    assert asyncio.run(forget_during_checkpoint()) == _CHECKPOINT_CHUNK  # the first chunk only
    assert len(sent) == _CHECKPOINT_CHUNK
    _close(cards)
