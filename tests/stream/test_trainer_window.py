"""The trainer's window reader on an in-memory training-examples topic: the rebuild seeks by
time and reads to the end offsets seen at start, then polls for what comes after. The
broker scenario is test_trainer_resilience.py (the same digest after a restart); what an odd
example does to the window is test_control_plane.py."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from fraudstream.models.features import FEATURE_NAMES
from fraudstream.stream import trainer_window
from fraudstream.stream.config import load_settings
from fraudstream.stream.logs import RefusalLog
from fraudstream.stream.metrics import TrainerMetrics
from fraudstream.stream.trainer_window import WindowReader

NOW = time.time()  # on_example checks event times against the wall clock
DAY = 86_400.0


def example(i: int, fraud: bool, event_ts: float) -> bytes:
    return json.dumps({"tx_id": f"t{i}", "card_id": "c1", "event_ts": event_ts,
                       "label_ts": event_ts + DAY, "is_fraud": fraud,
                       "features": {n: 1.0 for n in FEATURE_NAMES},
                       "scores": {"online": 0.5}}).encode()


class FakeTopic:
    """A KafkaConsumer over in-memory partitions of ``(timestamp_ms, value)`` records."""

    def __init__(self, topic: str, partitions: dict[int, list[tuple[int, bytes]]]) -> None:
        self.topic, self.logs = topic, partitions
        self.positions: dict[TopicPartition, int] = {}
        self.closed = False

    def partitions_for_topic(self, topic):
        return set(self.logs) if topic == self.topic else None

    def assign(self, tps):
        self.positions = {tp: 0 for tp in tps}

    def offsets_for_times(self, wanted):
        out = {}
        for tp, ms in wanted.items():
            found = [i for i, (ts, _) in enumerate(self.logs[tp.partition]) if ts >= ms]
            out[tp] = SimpleNamespace(offset=found[0]) if found else None
        return out

    def end_offsets(self, tps):
        return {tp: len(self.logs[tp.partition]) for tp in tps}

    def seek(self, tp, offset):
        self.positions[tp] = offset

    def position(self, tp):
        return self.positions[tp]

    def poll(self, timeout_ms=0):
        out = {}
        for tp, pos in self.positions.items():
            log = self.logs[tp.partition]
            if pos < len(log):
                out[tp] = [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=pos,
                                           value=log[pos][1])]
                self.positions[tp] = pos + 1
        return out

    def close(self):
        self.closed = True


@pytest.fixture
def settings(tmp_path):
    return load_settings(model_registry=tmp_path / "registry", trainer_window_days=30)


def reader_on(settings, monkeypatch, partitions) -> tuple[WindowReader, FakeTopic]:
    topic = FakeTopic(settings.topics.training_examples, partitions)
    monkeypatch.setattr(trainer_window, "KafkaConsumer", lambda **kwargs: topic)
    metrics = TrainerMetrics(CollectorRegistry())
    return WindowReader(settings, list(FEATURE_NAMES), metrics,
                        RefusalLog(logging.getLogger("test"))), topic


def ms(ts: float) -> int:
    return int(ts * 1000)


def test_the_rebuild_reads_the_last_window_and_counts_nothing_as_new(settings, monkeypatch):
    old, recent = NOW - 40 * DAY, NOW - 2 * DAY
    reader, topic = reader_on(settings, monkeypatch, {
        0: [(ms(old), example(0, True, old)), (ms(recent), example(1, True, recent))],
        1: [(ms(recent), example(2, False, recent)), (ms(recent), b"garbage")],
    })
    stats = reader.rebuild(now=NOW)
    # partition 0's first record was produced before the window (+1 day): not read
    assert stats["records_read"] == 3 and stats["rows"] == 2 and stats["frauds"] == 1
    assert reader.new_frauds == 0  # the rebuild is history, not news
    get = reader.metrics.registry.get_sample_value
    assert get("fraudstream_trainer_examples_total", {"outcome": "invalid"}) == 1
    assert get("fraudstream_trainer_window_rows") == 2


def test_new_examples_after_the_rebuild_count_as_new_frauds_until_taken(settings, monkeypatch):
    reader, topic = reader_on(settings, monkeypatch, {0: []})
    reader.rebuild(now=NOW)
    topic.logs[0] += [(ms(NOW), example(i, i % 2 == 0, NOW - DAY - i)) for i in range(4)]
    while reader.poll(0):
        pass
    assert reader.new_frauds == 2
    data = reader.take()
    assert len(data) == 4 and int(data.y.sum()) == 2
    assert reader.new_frauds == 0
    reader.close()
    assert topic.closed


def test_a_topic_without_partitions_is_an_error_that_says_what_to_do(settings, monkeypatch):
    reader, topic = reader_on(settings, monkeypatch, {})
    with pytest.raises(RuntimeError, match="fraudstream topics create"):
        reader.open()
