"""The trainer is isolated: SIGKILL mid-cycle leaves the registry whole and scoring untouched,
and a restarted trainer rebuilds the same window from Kafka."""

from __future__ import annotations

import json
import re
import signal

import pytest

from fraudstream.models.registry import Registry
from fraudstream.stream import simulator as sim
from fraudstream.stream.processes import TrainerProcess, WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics
from kafka_helpers import read_topic
from trainer_helpers import cli, produce, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DIGEST = re.compile(r"(\d+) rows, (\d+) frauds, digest ([0-9a-f]{64})")


def test_sigkill_mid_cycle_then_restart_rebuilds_the_same_window(settings, tmp_path):
    df = sim.simulate(sim.SimulationConfig(n_customers=300, n_terminals=600, n_days=16, seed=9))
    cut = df["ts"].min() + 12 * 86400
    first, later = df[df["ts"] < cut], df[df["ts"] >= cut]
    create_topics(settings)
    # A diffusion fit that cannot finish in the test: the kill lands inside it.
    env = settings_env(settings, app_id=settings.app_id, label_delay_days=2, trainer_min_frauds=10, trainer_min_fit_frauds=5,
                       trainer_holdout_days=3, trainer_diffusion_steps=10_000_000,
                       trainer_interval_s=3600, trainer_new_frauds_trigger=100_000)
    worker = WorkerProcess(env, tmp_path / "w.log", "w1")
    trainer = TrainerProcess(env, tmp_path / "trainer.log")
    restarted = None
    registry = Registry(settings.model_registry)
    try:
        counts = produce(settings, first, 2.0)
        wait_for("every label joined and in the trainer's window", lambda: (trainer.metric(
            "fraudstream_trainer_examples_total", {"outcome": "kept"}) or 0) >= counts["labels"],
            240, worker, trainer, every=2)
        assert cli(env, "retrain").returncode == 0
        wait_for("the diffusion fit", lambda: trainer.metric("fraudstream_trainer_cycle_running") == 1
                 and "diffusion: fit" in trainer.log_path.read_text(), 120, trainer)
        (taken,) = [m for line in trainer.log_path.read_text().splitlines()
                    if "takes the window" in line for m in DIGEST.findall(line)]
        assert trainer.stop(signal.SIGKILL) == -signal.SIGKILL

        assert registry.versions() == [] and registry.champion() is None
        # Scoring never depended on the trainer: new transactions are all scored meanwhile.
        n = counts["transactions"] + produce(settings, later, 2.0, transactions_only=True)["transactions"]
        scores = read_topic(settings, settings.topics.scores, lambda r: len(r) >= n, timeout=180)
        assert {json.loads(r.value)["tx_id"] for r in scores} == set(df["tx_id"])

        # What a kill during the registry write would leave: a half-written staging entry.
        (registry.staging_dir / "v-killed").mkdir(parents=True)
        (registry.staging_dir / "v-killed" / "model.ubj").write_bytes(b"half")
        restarted = TrainerProcess(env, tmp_path / "trainer2.log")
        wait_for("the rebuilt window", lambda: "training window rebuilt" in
                 restarted.log_path.read_text(), 120, restarted)
        log = restarted.log_path.read_text()
        (rebuilt,) = [m for line in log.splitlines() if "window rebuilt" in line
                      for m in DIGEST.findall(line)]
        assert rebuilt == taken  # same rows, same frauds, same (tx_id, label) digest
        assert "removed 1 unfinished version(s)" in log
        assert registry.versions() == [] and not any(registry.staging_dir.iterdir())
    finally:
        for p in (worker, trainer, restarted):
            if p is not None:
                p.stop()
