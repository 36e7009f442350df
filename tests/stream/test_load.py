"""The benchmark's load generator (pv | kcat) against the real broker: every line becomes one
record with its key, at the offered rate, with nothing on the command line to leak."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fraudstream.stream.load import LoadTools, PacedLoad, PacedProducer, split_by_key, write_lines
from fraudstream.stream.topics import create_topics
from kafka_helpers import read_topic


def test_lines_with_a_tab_or_newline_are_refused(tmp_path: Path):
    assert write_lines(tmp_path / "ok", [(b"c1", b'{"a":1}'), (b"c2", b"{}")]) == 2
    assert (tmp_path / "ok").read_bytes() == b'c1\t{"a":1}\nc2\t{}\n'
    for key, value in ((b"c\t1", b"{}"), (b"c1", b'{"a":\n1}'), (b"c\n", b"{}")):
        with pytest.raises(ValueError, match="tab or newline"):
            write_lines(tmp_path / "bad", [(key, value)])


def test_split_by_key_keeps_every_record_and_each_keys_order():
    records = [(f"card-{i % 13}".encode(), f'{{"i":{i}}}'.encode()) for i in range(500)]
    groups = split_by_key(records, 4)
    assert len(groups) == 4 and sorted(sum(groups, [])) == sorted(records)
    for group in groups:  # a key lives in one group, its records in their original order
        assert not {k for k, _ in group} & {k for g in groups if g is not group for k, _ in g}
        for key in {k for k, _ in group}:
            assert [v for k, v in group if k == key] == [v for k, v in records if k == key]
    assert split_by_key(records, 1) == [records]
    assert split_by_key([(b"only", b"{}")], 8) == [[(b"only", b"{}")]]  # no empty streams
    with pytest.raises(ValueError, match="1 or more"):
        split_by_key(records, 0)


def test_missing_tools_say_how_to_get_them(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no system kcat either
    with pytest.raises(RuntimeError, match="make tools"):
        LoadTools.find(tmp_path)


@pytest.mark.kafka
def test_paced_lines_arrive_as_keyed_records_at_the_offered_rate(settings, tmp_path: Path):
    create_topics(settings)
    topic = settings.topics.transactions
    lines = [(f"card-{i % 7}".encode(), f'{{"i":{i}}}'.encode()) for i in range(400)]
    path = tmp_path / "load.txt"
    write_lines(path, lines)
    started = time.monotonic()
    producer = PacedProducer(LoadTools.find(), settings, topic, path, rate=200)
    producer.wait(timeout=60)
    took = time.monotonic() - started
    records = read_topic(settings, topic, lambda r: len(r) >= 400, timeout=60)
    assert sorted((r.key, r.value) for r in records) == sorted(lines)
    # one card, one partition (the same murmur2 partitioner as every other client)
    assert all(len({r.partition for r in records if r.key == k}) == 1 for k, _ in lines[:7])
    stamps = sorted(r.timestamp for r in records)
    assert took >= 1.5 and (stamps[-1] - stamps[0]) / 1000 >= 1.5  # 400 lines at 200/s: ~2 s
    assert not Path(producer._config).exists()  # the client config (it may hold a password) is gone


@pytest.mark.kafka
def test_a_load_split_over_streams_arrives_whole_in_each_cards_order(settings, tmp_path: Path):
    create_topics(settings)
    topic = settings.topics.transactions
    lines = [(f"card-{i % 11}".encode(), f'{{"i":{i}}}'.encode()) for i in range(600)]
    started = time.monotonic()
    load = PacedLoad(LoadTools.find(), settings, topic, lines, tmp_path / "load.txt", rate=300,
                     streams=3)
    assert len(load.producers) == 3
    load.wait(timeout=60)
    took = time.monotonic() - started
    records = read_topic(settings, topic, lambda r: len(r) >= 600, timeout=60)
    assert sorted((r.key, r.value) for r in records) == sorted(lines)
    for key in {k for k, _ in lines}:  # one card: one partition, in the order it was written
        got = sorted((r.offset, r.value) for r in records if r.key == key)
        assert [v for _, v in got] == [v for k, v in lines if k == key]
    assert took >= 1.5  # 600 lines at 300/s over three streams: ~2 s, not as fast as it can


@pytest.mark.kafka
def test_an_unreachable_broker_is_an_error_not_a_silent_loss(settings, tmp_path: Path):
    path = tmp_path / "load.txt"
    write_lines(path, [(b"c1", b"{}")])
    dead = settings.model_copy(update={"broker_url": "kafka://127.0.0.1:9"})
    producer = PacedProducer(LoadTools.find(), dead, "t", path, rate=None)
    with pytest.raises(RuntimeError, match="kcat failed"):
        producer.wait(timeout=120)
