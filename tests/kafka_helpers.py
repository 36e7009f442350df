"""Test helpers around the real broker: run workers as processes, read topics back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from fraudstream.stream.config import Settings
from fraudstream.stream.kafka_local import free_port


def settings_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The environment that makes a subprocess build exactly ``settings`` (plus ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    env["FRAUDSTREAM_BROKER_URL"] = settings.broker_url
    env["FRAUDSTREAM_PARTITIONS"] = str(settings.partitions)
    env["FRAUDSTREAM_MODEL_REGISTRY"] = str(settings.model_registry)
    for name, value in settings.topics.model_dump().items():
        env[f"FRAUDSTREAM_TOPICS__{name.upper()}"] = value
    for key, value in extra.items():
        env[f"FRAUDSTREAM_{key.upper()}"] = str(value)
    return env


class WorkerProcess:
    """A ``fraudstream worker`` subprocess with its own metrics port and log file."""

    def __init__(self, env: dict[str, str], log_path: Path, worker_id: str,
                 passthrough: bool = False) -> None:
        self.metrics_port = free_port()
        env = {**env, "FRAUDSTREAM_WORKER_ID": worker_id,
               "FRAUDSTREAM_METRICS_PORT": str(self.metrics_port)}
        self.log_path = log_path
        self._log = open(log_path, "ab")
        cmd = [sys.executable, "-m", "fraudstream.stream.cli", "worker", "--loglevel", "info"]
        if passthrough:
            cmd.append("--passthrough")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        from urllib.request import urlopen

        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        except OSError:
            return None
        total = None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    total = (total or 0.0) + sample.value
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


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
