"""The small single-partition topics: model announcements, trainer requests, synthetic frauds.

Written and read with kafka-python by the trainer and the CLI. Workers follow the same
topics asynchronously (``stream/model_follower.py``) and use :func:`latest_announcements`
once at start-up, so a worker started later begins with the current champion.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .config import Settings
from .contract import decode, encode

__all__ = ["announce", "latest_announcements", "producer", "request_retrain",
           "publish_synthetic", "tail_consumer"]

ROLES = ("champion", "shadow")


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                         client_id="fraudstream-control", **settings.kafka_python_security())


def announce(settings: Settings, payload: dict[str, Any], kafka: KafkaProducer | None = None,
             timeout: float = 30.0) -> None:
    """Publish a model-updates record keyed by its role; returns once the broker has it."""
    own = kafka is None
    kafka = kafka or producer(settings)
    try:
        kafka.send(settings.topics.model_updates, key=payload["role"].encode("utf-8"),
                   value=encode("model-updates", payload)).get(timeout=timeout)
    finally:
        if own:
            kafka.close(timeout=5)


def latest_announcements(settings: Settings, timeout: float = 30.0) -> tuple[dict[str, dict], int]:
    """The last valid model-updates record per role, and the end offset read up to."""
    tp = TopicPartition(settings.topics.model_updates, 0)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="fraudstream-models",
                             **settings.kafka_python_security())
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek_to_beginning(tp)
        latest: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {tp.topic} took over {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    got = decode("model-updates", r.value)
                    role = (r.key or b"").decode("utf-8", "replace")
                    if got.value is not None and role in ROLES:
                        latest[role] = got.value
        return latest, end
    finally:
        consumer.close()


def request_retrain(settings: Settings, reason: str = "requested from the command line") -> str:
    """Ask the trainer for a cycle now; returns the request id."""
    request_id = uuid.uuid4().hex[:12]
    value = {"command": "retrain", "request_id": request_id, "reason": reason, "at": time.time()}
    kafka = producer(settings)
    try:
        kafka.send(settings.topics.control, key=request_id.encode(),
                   value=encode("control", value)).get(timeout=30)
    finally:
        kafka.close(timeout=5)
    return request_id


def publish_synthetic(settings: Settings, kafka: KafkaProducer, version: str,
                      feature_names: list[str], schema: str, rows: Iterable[Iterable[float]]) -> int:
    """Send synthetic fraud rows to the synthetic-frauds topic; returns how many."""
    now = time.time()
    futures = []
    for row in rows:
        value = {"synthetic": True, "version": version, "feature_schema": schema, "at": now,
                 "features": {n: float(v) for n, v in zip(feature_names, row)}}
        futures.append(kafka.send(settings.topics.synthetic_frauds, key=version.encode(),
                                  value=json.dumps(value, separators=(",", ":")).encode()))
    for f in futures:
        f.get(timeout=30)
    return len(futures)


def tail_consumer(settings: Settings, topic: str, client_id: str) -> KafkaConsumer:
    """A group-less consumer of partition 0 of ``topic``, positioned at its end."""
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id=client_id,
                             **settings.kafka_python_security())
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.position(tp)  # resolve now: requests sent after this call are seen
    return consumer
