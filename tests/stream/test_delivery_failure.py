"""A record the broker refuses stops the worker before it commits past it (issue 11).

The scores topic is made to refuse every score (``max.message.bytes`` far below a score
record's size): aiokafka's delivery futures fail, the worker logs why and exits with status
75 instead of committing offsets past output that was never written. Once the topic is fixed,
a restarted worker scores every transaction: nothing was lost.
"""

from __future__ import annotations

import json
import time

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from fraudstream.stream import simulator as sim
from fraudstream.stream.processes import WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics
from kafka_helpers import read_topic
from trainer_helpers import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _set_max_message_bytes(settings, topic: str, value: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": str(value)})])
    finally:
        admin.close()


def test_an_undeliverable_score_stops_the_worker_and_nothing_is_lost(settings, tmp_path):
    df = sim.simulate(sim.SimulationConfig(n_customers=60, n_terminals=120, n_days=3, seed=4))
    create_topics(settings)
    _set_max_message_bytes(settings, settings.topics.scores, 64)  # every score is larger
    env = settings_env(settings, app_id=settings.app_id)
    worker = WorkerProcess(env, tmp_path / "w1.log", "w1")
    try:
        n = produce(settings, df, 7.0, transactions_only=True)["transactions"]
        deadline = time.monotonic() + 180
        while worker.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        status = worker.proc.poll()
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert status == 75, worker.log_tail()
    assert "could not be delivered" in log and settings.topics.scores in log, worker.log_tail()

    committed = _committed(settings)
    _set_max_message_bytes(settings, settings.topics.scores, 1 << 20)
    worker = WorkerProcess(env, tmp_path / "w2.log", "w2")
    try:
        # The dead member holds its partitions until its session times out (~45 s) first.
        scores = read_topic(settings, settings.topics.scores, lambda r: len(r) >= n, timeout=300)
    finally:
        worker.stop()
    missing = set(df["tx_id"]) - {json.loads(r.value)["tx_id"] for r in scores}
    assert not missing, (len(missing), len(df), committed, worker.log_tail())


def _committed(settings) -> dict:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(settings.app_id)
    finally:
        admin.close()
    return {str(k): str(v)[:300] for k, v in offsets.items()}
