"""The worker refuses a tampered or poisoned online-learner checkpoint and starts fresh."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from fraudstream.models.online import OnlineLearner
from fraudstream.stream.app import WorkerApp
from fraudstream.stream.config import load_settings


def _worker(tmp_path) -> WorkerApp:
    settings = load_settings(model_registry=tmp_path / "registry", worker_id="w-ckpt",
                             metrics_port=0)
    return WorkerApp(settings, metrics_registry=CollectorRegistry())


def _refused(app: WorkerApp) -> float:
    return app.metrics_registry.get_sample_value("fraudstream_online_checkpoint_refused_total",
                                         {"action": "load"})


def test_a_verified_checkpoint_is_restored(tmp_path):
    app = _worker(tmp_path)
    for i in range(50):
        app.learner.learn_one({"amount": float(i)}, i % 10 == 0)
    app.checkpoint_path.parent.mkdir(parents=True)
    app.learner.save(app.checkpoint_path)
    again = _worker(tmp_path)
    assert again.learner.n_learned == 50 and _refused(again) == 0


def test_a_tampered_checkpoint_is_refused_and_the_learner_starts_fresh(tmp_path):
    app = _worker(tmp_path)
    app.learner.learn_one({"amount": 3.0}, True)
    app.checkpoint_path.parent.mkdir(parents=True)
    app.learner.save(app.checkpoint_path)
    data = bytearray(app.checkpoint_path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte: the sha256 sidecar no longer matches
    app.checkpoint_path.write_bytes(bytes(data))
    again = _worker(tmp_path)
    assert again.learner.n_learned == 0 and _refused(again) == 1


def test_a_checkpoint_without_its_sidecar_is_never_unpickled(tmp_path):
    app = _worker(tmp_path)
    app.checkpoint_path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    # A pickle that would create `marker` if it were ever unpickled.
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    app.checkpoint_path.write_bytes(payload)
    again = _worker(tmp_path)
    assert not marker.exists() and again.learner.n_learned == 0 and _refused(again) == 1


def test_a_poisoned_learner_is_never_checkpointed(tmp_path):
    import asyncio

    app = _worker(tmp_path)
    learner = OnlineLearner(model="logreg", seed=0)  # river's weights, reachable to poison
    learner.learn_one({"amount": 1.0}, True)
    # Poison the weights directly (what a bug could do); the checkpoint timer must not write it.
    learner._predictor["LogisticRegression"]._weights["amount"] = math.nan
    app.learner = learner
    asyncio.run(app._checkpoint())
    assert not app.checkpoint_path.exists()
    assert app.metrics_registry.get_sample_value("fraudstream_online_checkpoint_refused_total",
                                         {"action": "save"}) == 1


def test_a_checkpoint_of_another_model_than_configured_is_not_used(tmp_path):
    old = OnlineLearner(model="logreg")
    for i in range(50):
        old.learn_one({"amount": float(i)}, i % 10 == 0)
    app = _worker(tmp_path)
    assert app.settings.online_model != "logreg"
    app.checkpoint_path.parent.mkdir(parents=True)
    old.save(app.checkpoint_path)
    again = _worker(tmp_path)
    assert again.learner.model == app.settings.online_model and again.learner.n_learned == 0
