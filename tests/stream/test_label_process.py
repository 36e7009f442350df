"""A worker's label process against the real broker: its own process, below the scoring
one, learning every label, handing its learner over, dying with its parent, and refusing
what it cannot read on the snapshots topic (stream/app.py, stream/label_child.py)."""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path

import pytest
from fraudstream.stream import simulator as sim
from fraudstream.stream.processes import WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics, internal_topics
from kafka_helpers import json_values, produce_raw, read_topic
from process_helpers import children, nice, process_gone
from trainer_helpers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _cmdline(pid: int) -> list[str]:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")


def test_the_label_process_learns_every_label_hands_its_learner_over_and_dies_with_its_parent(
        settings, tmp_path) -> None:
    create_topics(settings)
    settings = settings.model_copy(update={"learner_sync_s": 1.0})
    worker = WorkerProcess(settings_env(settings, app_id=settings.app_id, learner_sync_s=1.0,
                                        gil_switch_interval_ms=2),
                           tmp_path / "worker.log", "w1")
    try:
        df = sim.simulate(sim.SimulationConfig(n_customers=300, n_terminals=600, n_days=10, seed=3))
        counts = sim.produce_to_kafka(
            sim.events(df, 2.0), bootstrap_servers=settings.bootstrap_servers,
            topics={"transaction": settings.topics.transactions, "label": settings.topics.labels})
        n, n_labels = counts["transactions"], counts["labels"]
        read_topic(settings, settings.topics.scores, lambda r: len(r) >= n, timeout=180)
        examples = json_values(read_topic(settings, settings.topics.training_examples,
                                          lambda r: len(r) >= n_labels, timeout=180))
        assert len({e["tx_id"] for e in examples}) == n_labels  # every label joined, once
        wait_for("every label learned", lambda: worker.metric(
            "fraudstream_online_learned_total") == n_labels, 60, worker)
        # the scoring process took the label process's learner, with everything it learned
        wait_for("the learner handed over", lambda: worker.metric(
            "fraudstream_online_learner_examples") == n_labels, 30, worker)
        assert worker.metric("fraudstream_online_learner_syncs_total", {"outcome": "loaded"}) >= 1
        assert worker.metric("fraudstream_online_learner_syncs_total",
                             {"outcome": "refused"}) == 0

        labels = [c for c in children(worker.proc.pid) if "label" in _cmdline(c)]
        assert len(labels) == 1, [_cmdline(c) for c in children(worker.proc.pid)]
        child = labels[0]
        assert nice(child) - nice(worker.proc.pid) == settings.label_nice
        assert settings.label_sched_idle  # the default
        for tid in os.listdir(f"/proc/{child}/task"):  # every thread of it, none of its parent's
            try:
                assert os.sched_getscheduler(int(tid)) == os.SCHED_IDLE, tid
            except ProcessLookupError:  # a thread that ended meanwhile
                pass
        assert os.sched_getscheduler(worker.proc.pid) == os.SCHED_OTHER
        log = worker.log_path.read_text(errors="replace")
        for role in ("score", "label"):
            assert f"{role} process: GIL switch interval 2 ms; Kafka consumer on the event loop" in log
        # SIGKILL to the scoring process alone: the kernel stops its label process too
        os.kill(worker.proc.pid, signal.SIGKILL)
        wait_for("the label process gone", lambda: process_gone(child), 30)
    finally:
        worker.stop()


def test_a_record_the_label_process_cannot_read_is_dead_lettered_and_the_rest_joins(
        settings, tmp_path) -> None:
    create_topics(settings)
    snapshots = internal_topics(settings)["snapshots"]
    worker = WorkerProcess(settings_env(settings, app_id=settings.app_id),
                           tmp_path / "worker.log", "w1")
    try:
        df = sim.simulate(sim.SimulationConfig(n_customers=100, n_terminals=200, n_days=4, seed=5))
        # garbage on the internal topic first: it must neither stop nor poison the join
        produce_raw(settings, snapshots, [(None, b"{not json"), (None, b"[1, 2]"),
                                          (None, json.dumps([{"tx_id": "x"}]).encode())])
        counts = sim.produce_to_kafka(
            sim.events(df, 1.0), bootstrap_servers=settings.bootstrap_servers,
            topics={"transaction": settings.topics.transactions, "label": settings.topics.labels})
        examples = read_topic(settings, settings.topics.training_examples,
                              lambda r: len(r) >= counts["labels"], timeout=180)
        assert len({e["tx_id"] for e in json_values(examples)}) == counts["labels"]
        dead = json_values(read_topic(settings, settings.topics.transactions_dlq,
                                      lambda r: len(r) >= 3, timeout=60))
        assert len(dead) == 3 and all(d["source"]["topic"] == "internal:join" for d in dead)
        errors = [json.loads(base64.b64decode(d["payload_b64"]))["error"]
                  for d in dead]
        assert any("not JSON" in e for e in errors) and any("entry 0" in e for e in errors)
        assert worker.metric("fraudstream_processing_errors_total", {"stage": "join"}) == 3
        assert worker.proc.poll() is None
    finally:
        worker.stop()
