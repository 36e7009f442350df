"""Contract tests for the online learner (every model) and the prequential metrics."""

from __future__ import annotations

import copy
import math
import os
import pickle

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraudstream.models import online
from fraudstream.models.online import MODELS, OnlineLearner, PrequentialMetrics

N_FEATURES = 20


def make_stream(n: int, seed: int, rate: float = 0.01, shift: float = 2.0):
    """Imbalanced stream: frauds shifted on 5 of 20 features; features on mixed scales."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rate
    X = rng.normal(size=(n, N_FEATURES))
    X[y, :5] += shift
    X[:, 10:] = X[:, 10:] * 100.0 + 1000.0  # count- and amount-like magnitudes
    names = [f"f{i}" for i in range(N_FEATURES)]
    return [dict(zip(names, row)) for row in X.tolist()], y.tolist()


@pytest.fixture(scope="module")
def train():
    return make_stream(600, seed=11, rate=0.05)


@pytest.fixture(scope="module")
def probe():
    X, _ = make_stream(200, seed=12, rate=0.05)
    X[0] = {k: v * 1e6 for k, v in X[0].items()}  # far outside anything learned
    return X


def fitted(model: str, train, **kwargs) -> OnlineLearner:
    learner = OnlineLearner(model, seed=5, **kwargs)
    learner.learn_many(*train)
    return learner


@pytest.mark.parametrize("model", MODELS)
def test_input_not_mutated(model: str, train, probe) -> None:
    learner = fitted(model, train)
    X = [dict(x) for x in probe[:20]]
    before = copy.deepcopy(X)
    learner.learn_one(X[0], True)
    learner.learn_many(X[1:5], [False, True, False, False], weights=[1.0, 2.0, 1.0, 1.0])
    learner.predict_proba_one(X[5])
    learner.predict_proba_many(X)
    assert X == before


@pytest.mark.parametrize("model", MODELS)
def test_probabilities_are_in_unit_interval(model: str, train, probe) -> None:
    cold = OnlineLearner(model).predict_proba_many(probe)
    warm = fitted(model, train).predict_proba_many(probe)
    for p in (cold, warm):
        assert p.shape == (len(probe),) and p.dtype == np.float64
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert warm.std() > 0  # it learned something
    assert OnlineLearner(model).predict_proba_many([]).shape == (0,)


@pytest.mark.parametrize("model", MODELS)
def test_batch_scores_equal_single_scores(model: str, train, probe) -> None:
    learner = fitted(model, train)
    one = np.array([learner.predict_proba_one(x) for x in probe])
    np.testing.assert_allclose(learner.predict_proba_many(probe), one, rtol=0, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_save_load_round_trip(model: str, train, probe, tmp_path) -> None:
    learner = fitted(model, train)
    path = tmp_path / "online.pkl"
    learner.save(path)
    restored = OnlineLearner.load(path)
    assert os.listdir(tmp_path) == ["online.pkl"]  # no temp file left behind
    assert restored.n_learned == learner.n_learned
    assert np.array_equal(restored.predict_proba_many(probe), learner.predict_proba_many(probe))
    # The restored learner carries on exactly as the original (sampler RNG included).
    more_X, more_y = make_stream(300, seed=13, rate=0.05)
    learner.learn_many(more_X, more_y)
    restored.learn_many(more_X, more_y)
    assert np.array_equal(restored.predict_proba_many(probe), learner.predict_proba_many(probe))


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_output(model: str, train, probe) -> None:
    a, b = fitted(model, train), fitted(model, train)
    assert np.array_equal(a.predict_proba_many(probe), b.predict_proba_many(probe))


def test_seed_drives_the_sampler(train, probe) -> None:
    a = OnlineLearner(seed=1)
    b = OnlineLearner(seed=2)
    a.learn_many(*train)
    b.learn_many(*train)
    assert not np.array_equal(a.predict_proba_many(probe), b.predict_proba_many(probe))


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [(m, {}) for m in MODELS] + [("logreg", {"sampler": None, "class_weight_fraud": 10.0})],
)
def test_prequential_ap_clearly_above_base_rate(model: str, kwargs: dict) -> None:
    X, y = make_stream(8000, seed=3, rate=0.01)
    learner = OnlineLearner(model, seed=0, **kwargs)
    metrics = PrequentialMetrics(window=len(X))
    for i in range(0, len(X), 200):  # score a micro-batch, then learn its labels
        metrics.update_many(learner.predict_proba_many(X[i : i + 200]), y[i : i + 200])
        learner.learn_many(X[i : i + 200], y[i : i + 200])
    assert learner.n_learned == len(X)
    base = metrics.base_rate()
    assert 0.005 < base < 0.02
    ap = metrics.average_precision()
    print(f"{model} {kwargs}: prequential AP {ap:.3f}, base rate {base:.4f}")
    assert ap > 5 * base, (ap, base)


def test_learn_many_is_sequential_learn_one(train, probe) -> None:
    a = OnlineLearner(seed=4)
    b = OnlineLearner(seed=4)
    a.learn_many(*train, weights=[2.0] * len(train[0]))
    for x, y in zip(*train):
        b.learn_one(x, y, weight=2.0)
    assert np.array_equal(a.predict_proba_many(probe), b.predict_proba_many(probe))
    with pytest.raises(ValueError):
        a.learn_many(train[0][:3], train[1][:2])


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="model"):
        OnlineLearner("svm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sampler"):
        OnlineLearner(sampler="over")
    with pytest.raises(ValueError):
        OnlineLearner(class_weight_fraud=0.0)
    with pytest.raises(ValueError):
        OnlineLearner(fraud_share=1.0)


def test_load_rejects_foreign_pickles(tmp_path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"version": 1, "learner": "not a learner"}))
    with pytest.raises(ValueError):
        OnlineLearner.load(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError):
        OnlineLearner.load(path)


def test_failed_save_keeps_previous_checkpoint(train, probe, tmp_path, monkeypatch) -> None:
    learner = fitted("logreg", train)
    path = tmp_path / "online.pkl"
    learner.save(path)
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(online.pickle, "dump", boom)
    with pytest.raises(OSError):
        OnlineLearner().save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["online.pkl"]


# PrequentialMetrics


@pytest.mark.parametrize("seed", range(5))
def test_prequential_metrics_match_sklearn_on_the_window(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, window = 3000, 700
    y = rng.random(n) < 0.05
    scores = np.round(np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1), 2)  # many ties
    m = PrequentialMetrics(window=window)
    for s, label in zip(scores, y):
        m.update(s, label)
    ys, ss = y[-window:], scores[-window:]
    assert m.n == window and m.n_positives == ys.sum()
    assert m.base_rate() == pytest.approx(ys.mean())
    assert m.average_precision() == pytest.approx(average_precision_score(ys, ss), abs=1e-12)
    for t in (0.0, 0.35, 0.5, 0.8):
        flagged = ss >= t
        assert m.recall_at(t) == pytest.approx(recall_score(ys, flagged))
        if flagged.any():
            assert m.precision_at(t) == pytest.approx(precision_score(ys, flagged))


def test_prequential_metrics_undefined_cases_are_nan() -> None:
    m = PrequentialMetrics(window=10)
    assert m.n == 0 and math.isnan(m.base_rate()) and math.isnan(m.average_precision())
    m.update_many([0.1, 0.2], [False, False])
    assert m.base_rate() == 0.0
    assert math.isnan(m.average_precision()) and math.isnan(m.recall_at(0.5))
    assert math.isnan(m.precision_at(0.5))
    m.update(0.9, True)
    assert m.average_precision() == 1.0 and m.recall_at(0.5) == 1.0 and m.precision_at(0.5) == 1.0
    with pytest.raises(ValueError):
        PrequentialMetrics(window=0)
    with pytest.raises(ValueError):
        m.update_many([0.1], [True, False])


def test_reasons_name_the_feature_that_drives_the_score():
    import random

    from fraudstream.models.online import OnlineLearner

    learner = OnlineLearner(seed=1)
    rng = random.Random(0)
    for _ in range(3000):
        amount = rng.random() * 100
        learner.learn_one({"amount": amount, "noise": rng.random()}, amount > 90)
    top, low = learner.explain_many([{"amount": 99.0, "noise": 0.5},
                                         {"amount": 1.0, "noise": 0.5}])
    assert top[0]["feature"] == "amount" and top[0]["contribution"] > 1.0
    assert all(r["feature"] != "amount" for r in low)  # a small amount pushes the score down
    assert OnlineLearner(model="hoeffding").explain_many([{"amount": 1.0}]) == [[]]
