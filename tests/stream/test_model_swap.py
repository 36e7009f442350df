"""Hot-swap against the real broker: announcements, a later-started worker, a corrupted
artifact, manual promotion and rollback through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.features import FEATURE_NAMES, schema_hash
from fraudstream.models.registry import MODEL_FILE, Registry
from fraudstream.stream import simulator as sim
from fraudstream.stream.announce import announce
from fraudstream.stream.processes import WorkerProcess, settings_env
from fraudstream.stream.topics import create_topics
from kafka_helpers import read_topic
from trainer_helpers import cli, model_version, produce, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def publish_model(registry: Registry, seed: int) -> str:
    """A small real XGBoost model over the worker's feature vector, written to the registry."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, len(FEATURE_NAMES)))
    y = (X[:, 0] + rng.normal(size=400) > 1).astype(int)
    model = XGBoostModel.train(X, y, FEATURE_NAMES, XGBParams(n_estimators=10, seed=seed))
    info = registry.publish({MODEL_FILE: model.to_bytes()}, {
        "status": "challenger", "feature_names": FEATURE_NAMES,
        "feature_schema": schema_hash(FEATURE_NAMES),
        "report": {"holdout": {"challenger": {"average_precision": 0.5}}}})
    return info.version


def test_swaps_refusals_promote_and_rollback(settings, tmp_path):
    df = sim.simulate(sim.SimulationConfig(n_customers=200, n_terminals=400, n_days=8, seed=5))
    bounds = np.linspace(0, len(df), 6).astype(int)
    chunks = [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    parts, shadow_part = chunks[:3] + chunks[4:], chunks[3]  # in event-time order of use
    create_topics(settings)
    registry = Registry(settings.model_registry)
    v1, v2, v3 = (publish_model(registry, seed) for seed in (1, 2, 3))
    registry.set_champion(v1, "test")
    announce(settings, {**registry.announcement(v1), "action": "promote", "reason": "test"})

    env = settings_env(settings, app_id=settings.app_id)
    # Started after the announcement: it must begin with v1, not with the online learner.
    worker = WorkerProcess(env, tmp_path / "w.log", "w1")
    scored = 0

    def score(part) -> set[str]:
        nonlocal scored
        scored += produce(settings, part, 7.0, transactions_only=True)["transactions"]
        records = read_topic(settings, settings.topics.scores, lambda r: len(r) >= scored, timeout=180)
        mine = set(part["tx_id"])
        return {json.loads(r.value)["model_version"] for r in records
                if json.loads(r.value)["tx_id"] in mine}

    try:
        wait_for("the worker's metrics", lambda: model_version(worker), 90, worker)
        assert model_version(worker) == v1
        assert score(parts[0]) == {v1}

        # A corrupted artifact (one flipped byte) announced with its original checksum.
        path = registry.versions_dir / v3 / MODEL_FILE
        payload = registry.announcement(v3)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        announce(settings, {**payload, "action": "promote", "reason": "corrupted on purpose"})
        wait_for("the refusal", lambda: worker.metric("fraudstream_model_swaps_total",
                                                      {"outcome": "refused"}), 60, worker)
        assert score(parts[1]) == {v1}  # scoring went on with the old version
        assert "refused champion" in worker.log_path.read_text() and "sha256" in worker.log_tail(200)

        done = cli(env, "models", "promote", v2, "--reason", "test promote")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for("v2", lambda: model_version(worker) == v2, 60, worker)
        assert score(parts[2]) == {v2}

        # Shadow: v1 scores beside the deciding v2, reported in every score, never deciding.
        done = cli(env, "models", "shadow", v1)
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for("the shadow", lambda: worker.metric("fraudstream_model_swaps_total",
                                                     {"outcome": "loaded"}) == 3, 60, worker)
        scored += produce(settings, shadow_part, 7.0, transactions_only=True)["transactions"]
        records = read_topic(settings, settings.topics.scores, lambda r: len(r) >= scored, timeout=180)
        mine = set(shadow_part["tx_id"])
        shadowed = [json.loads(r.value) for r in records if json.loads(r.value)["tx_id"] in mine]
        assert {v["model_version"] for v in shadowed} == {v2}
        assert {v["shadow_version"] for v in shadowed} == {v1}
        assert all(set(v["models"]) == {"online", "batch", "shadow"} for v in shadowed)
        assert cli(env, "models", "shadow", "--clear").returncode == 0
        wait_for("the shadow cleared", lambda: worker.metric("fraudstream_model_swaps_total",
                                                             {"outcome": "cleared"}) == 1, 60, worker)

        done = cli(env, "models", "rollback")
        assert done.returncode == 0 and v1 in done.stdout, done.stdout + done.stderr
        wait_for("back to v1", lambda: model_version(worker) == v1, 60, worker)
        assert score(parts[3]) == {v1}
        listing = cli(env, "models", "list")
        assert listing.returncode == 0 and v1 in listing.stdout and "champion" in listing.stdout
        shown = cli(env, "models", "show", v3)
        assert "FAILED" in shown.stdout  # the registry CLI reports the damaged version too
        refused = worker.metric("fraudstream_model_swaps_total", {"outcome": "refused"})
        loaded = worker.metric("fraudstream_model_swaps_total", {"outcome": "loaded"})
    finally:
        worker.stop()
    assert refused == 1 and loaded == 4  # v1 at start, v2, v1 in shadow, v1 again
