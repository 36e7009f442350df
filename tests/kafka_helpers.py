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
