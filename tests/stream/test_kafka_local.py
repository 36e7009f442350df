"""The real local broker: start/stop/status, topics, and a produce/consume round trip."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from fraudstream.stream import kafka_jars
from fraudstream.stream.contract import decode, encode
from fraudstream.stream.kafka_local import BrokerError, LocalBroker, free_port, metadata_ok
from fraudstream.stream.topics import admin_client, create_topics, topic_specs

pytestmark = pytest.mark.kafka


def _java_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_session_broker_answers_metadata(kafka_broker):
    assert metadata_ok(kafka_broker)


def test_round_trip_through_the_broker(settings):
    """Produce contract records with kafka-python, consume them back, compare."""
    create_topics(settings)
    topic = settings.topics.transactions
    sent = [
        {"tx_id": f"tx-{i}", "ts": 1767225600 + i, "card_id": f"c{i % 7}",
         "terminal_id": f"t{i % 3}", "amount": float(i)}
        for i in range(500)
    ]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for value in sent:
        producer.send(topic, key=value["card_id"].encode(), value=encode("transactions", value))
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=f"rt-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", consumer_timeout_ms=10_000,
    )
    consumer.subscribe([topic])
    got, partitions_of_card = [], {}
    for msg in consumer:
        got.append(decode("transactions", msg.value).value)
        partitions_of_card.setdefault(msg.key.decode(), set()).add(msg.partition)
        if len(got) == len(sent):
            break
    consumer.close()
    assert sorted(got, key=lambda v: v["tx_id"]) == sorted(sent, key=lambda v: v["tx_id"])
    # keyed by card: all of one card's events on one partition
    assert all(len(parts) == 1 for parts in partitions_of_card.values())


def test_topics_create_is_idempotent_and_partitioned(settings):
    first = create_topics(settings)
    second = create_topics(settings)
    assert all(state.startswith("created") for state in first.values())
    assert all(state.startswith("exists") for state in second.values())
    assert second[settings.topics.transactions] == "exists (8 partitions)"
    assert second[settings.topics.model_updates] == "exists (1 partitions)"
    admin = admin_client(settings)
    try:
        names = set(admin.list_topics())
    finally:
        admin.close()
    assert {s.name for s in topic_specs(settings)} <= names


def test_cli_start_status_stop_leaves_no_java(tmp_path):
    port = free_port()
    env = {**os.environ, "FRAUDSTREAM_KAFKA_DATA_DIR": str(tmp_path / "k"),
           "FRAUDSTREAM_KAFKA_PORT": str(port)}
    before = _java_pids()
    cli = [sys.executable, "-m", "fraudstream.stream.cli", "kafka"]
    start = subprocess.run(cli + ["start"], env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr
    assert f"127.0.0.1:{port}" in start.stdout
    status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "is up" in status.stdout
    assert metadata_ok(f"127.0.0.1:{port}")
    stop = subprocess.run(cli + ["stop"], env=env, capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert _java_pids() == before
    status = subprocess.run(cli + ["status"], env=env, capture_output=True, text=True)
    assert status.returncode == 3 and "not running" in status.stdout


def test_missing_java_is_named(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="JDK 17"):
        kafka_jars.find_java()


def test_missing_maven_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="apt-get install maven"):
        kafka_jars.ensure_jars(tmp_path)


def test_port_in_use_is_a_clear_error(kafka_broker, tmp_path, settings):
    port = int(kafka_broker.rsplit(":", 1)[1])
    broker = LocalBroker(tmp_path / "k2", settings.kafka_home, port=port)
    with pytest.raises(BrokerError, match="already in use"):
        broker.start()
