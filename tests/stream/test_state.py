"""The tables' local state without Kafka: RocksDB writes, sizes, persisted changelog offsets."""

import gc

from faust.types import TP

from fraudstream.stream.app import build_app
from fraudstream.stream.config import load_settings


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
    assert len(pending) == 2
    pending.delete(1, "tx2")
    assert len(pending) == 1 and pending.get(1, "tx2") is None
    assert [(topic, partition, value is None) for topic, _, value, partition in sent] == [
        (pending.changelog, 0, False), (pending.changelog, 1, False),
        (pending.changelog, 0, False), (pending.changelog, 1, True)]  # the last: a tombstone

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
    cards.put(0, "c1", {"offset": 10})  # written again: the most recent now
    assert list(cards._cache[0]) == ["c3", "c4", "c1"]  # c0 and c2 evicted, oldest first
    assert not pending._cache.get(0)  # a snapshot is read once: never cached
    # evicted or uncached, every value is still read back from RocksDB
    assert [cards.get(0, f"c{i}")["offset"] for i in range(5)] == [0, 10, 2, 3, 4]
    assert pending.get(0, "t2") == {"tx_id": "t2"} and len(pending) == 5
    pending.delete(0, "t2")
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
