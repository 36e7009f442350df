"""Test helpers around the real broker: run workers as processes, read topics back."""

from __future__ import annotations

import json
import time
from typing import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from fraudstream.stream.config import Settings


def produce_raw(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_topic(settings: Settings, topic: str, until: Callable[[list], bool],
               timeout: float = 120.0) -> list:
    """Read a topic from the beginning (all partitions) until ``until(records)`` or timeout."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    deadline = time.monotonic() + timeout
    records: list = []
    try:
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            time.sleep(0.5)
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts or [])])
        consumer.seek_to_beginning()
        while time.monotonic() < deadline and not until(records):
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for msgs in batch.values():
                records.extend(msgs)
    finally:
        consumer.close()
    return records


def json_values(records: list) -> list[dict]:
    return [json.loads(r.value) for r in records]


def live_features(settings: Settings, probes: list[dict], timeout: float = 180) -> dict[str, dict]:
    """The scoring-time features of transactions already sent, as the worker took them.

    Labels the probes (legitimate, an hour after each) and reads the training examples the
    label join forwards: each carries the snapshot taken when the transaction was scored.
    """
    labels = [(p["card_id"].encode(), json.dumps({"tx_id": p["tx_id"], "card_id": p["card_id"],
                                                  "is_fraud": False, "ts": p["ts"] + 3600.0}).encode())
              for p in probes]
    produce_raw(settings, settings.topics.labels, labels)
    wanted = {p["tx_id"] for p in probes}
    examples = read_topic(settings, settings.topics.training_examples,
                          lambda r: wanted <= {json.loads(x.value)["tx_id"] for x in r},
                          timeout=timeout)
    return {e["tx_id"]: e["features"] for e in json_values(examples) if e["tx_id"] in wanted}


def assert_read_refused(topic: str, **consumer_kwargs: object) -> None:
    """A consumer built from ``consumer_kwargs`` (bootstrap and login) may not read ``topic``."""
    import pytest
    from kafka.errors import TopicAuthorizationFailedError

    consumer = KafkaConsumer(enable_auto_commit=False, **consumer_kwargs)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        with pytest.raises(TopicAuthorizationFailedError):
            for _ in range(20):
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()

