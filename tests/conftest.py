"""Shared fixtures: one real Kafka broker for the whole session, fresh topics per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fraudstream.stream.config import Settings, TopicNames, load_settings
from fraudstream.stream.kafka_local import LocalBroker, free_port


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node KRaft broker on a free port with a fresh data dir.

    The jars come from the same cache `fraudstream kafka start` uses (resolved once by mvn).
    """
    settings = load_settings()
    broker = LocalBroker(
        data_dir=tmp_path_factory.mktemp("kafka"),
        kafka_home=settings.kafka_home,
        port=free_port(),
    )
    status = broker.start(progress=print)
    try:
        yield status.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_names() -> TopicNames:
    """Topic names unique to one test, so tests never read each other's records."""
    suffix = uuid.uuid4().hex[:8]
    base = TopicNames()
    return TopicNames(**{k: f"{v}-{suffix}" for k, v in base.model_dump().items()})


@pytest.fixture
def settings(kafka_broker: str, topic_names: TopicNames, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker, with per-test topics and registry."""
    return load_settings(
        broker_url=f"kafka://{kafka_broker}",
        topics=topic_names,
        app_id=f"app-{topic_names.scores}",  # internal topics are per test too
        partitions=8,
        model_registry=tmp_path / "registry",
        state_dir=tmp_path / "state",
        metrics_port=0,
    )
