"""The tables' local state without Kafka: RocksDB writes, sizes, persisted changelog offsets."""

import gc

from faust.types import TP

from fraudstream.stream.app import build_app
from fraudstream.stream.config import load_settings


def _pending(settings):
    worker = build_app(settings)
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
