"""Contract tests for the online learner (every model) and the prequential metrics."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import pathlib
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sklearn.metrics import average_precision_score, precision_score, recall_score

from fraudstream.models.online import MODELS, CheckpointError, OnlineLearner, PrequentialMetrics

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
    # No temp file left behind; the sidecar holds the checkpoint's sha256.
    assert sorted(os.listdir(tmp_path)) == ["online.pkl", "online.pkl.sha256"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "online.pkl.sha256").read_text().split() == [digest]
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


def write_with_sidecar(path: pathlib.Path, data: bytes) -> None:
    """A checkpoint whose sidecar vouches for it, written without save()'s checks."""
    path.write_bytes(data)
    (path.parent / (path.name + ".sha256")).write_text(hashlib.sha256(data).hexdigest() + "\n")


def test_load_rejects_foreign_pickles(tmp_path) -> None:
    path = tmp_path / "x.pkl"
    for content in ({"version": 2, "learner": "not a learner"}, [1, 2],
                    {"version": 1, "learner": OnlineLearner()}):
        write_with_sidecar(path, pickle.dumps(content))
        with pytest.raises(CheckpointError):
            OnlineLearner.load(path)


def test_failed_save_keeps_previous_checkpoint(train, probe, tmp_path, monkeypatch) -> None:
    learner = fitted("logreg", train)
    path = tmp_path / "online.pkl"
    learner.save(path)
    good = path.read_bytes()
    sidecar = (tmp_path / "online.pkl.sha256").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pickle, "dumps", boom)
    with pytest.raises(OSError):
        OnlineLearner().save(path)
    assert path.read_bytes() == good
    assert (tmp_path / "online.pkl.sha256").read_bytes() == sidecar
    assert sorted(os.listdir(tmp_path)) == ["online.pkl", "online.pkl.sha256"]


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


# Issue 11: one absurd value must not poison the learner (and, through it, every decision)

NAMES = [f"f{i}" for i in range(15)]


def normal_example(rng: random.Random) -> dict[str, float]:
    return {n: rng.gauss(0.0, 1.0) for n in NAMES}


def warmed(n: int = 2000, seed: int = 0, **kwargs) -> tuple[OnlineLearner, random.Random]:
    rng = random.Random(seed)
    learner = OnlineLearner(seed=seed, **kwargs)
    for _ in range(n):
        learner.learn_one(normal_example(rng), rng.random() < 0.02)
    return learner, rng


def logreg_state(learner: OnlineLearner) -> tuple:
    """Everything learn_one may change, by value (the sampler's random stream aside)."""
    scaler, logreg, sampler = learner._scaler, learner._logreg, learner._sampler
    sampled = ((dict(sampler._actual_dist), dict(sampler._trained_on_dist), sampler._pivot)
               if sampler is not None else None)
    return (dict(scaler.counts), dict(scaler.means), dict(scaler.vars), logreg.weights,
            logreg.intercept, logreg.optimizer.n_iterations, sampled,
            dict(getattr(logreg.optimizer, "g2", {})))


def test_issue_11_a_huge_amount_labelled_fraud_does_not_poison_the_learner() -> None:
    """Before the fix: vars["f0"] became inf, every weight NaN at the next example, and
    Scorer.decide turned every NaN score into approve, checkpoint after checkpoint."""
    from fraudstream.models.scorer import Scorer

    learner, rng = warmed()
    probe = [normal_example(rng) for _ in range(50)]
    before = learner.predict_proba_many(probe)
    assert learner.learn_one(normal_example(rng) | {"f0": 1e300}, True) is False
    assert learner.n_refused == 1 and learner.n_learned == 2000
    assert np.array_equal(learner.predict_proba_many(probe), before)
    for _ in range(50):
        assert learner.learn_one(normal_example(rng), True)
    after = learner.predict_proba_many(probe)
    assert np.isfinite(after).all() and not np.array_equal(after, before)
    scored = Scorer(learner).score(probe)
    assert np.array_equal(scored.scores, after) and scored.fallbacks == [None] * len(probe)


@pytest.mark.parametrize("sampler", ["under", None])
def test_an_update_that_makes_the_state_non_finite_is_undone_exactly(sampler) -> None:
    # Let 1e300 past the input check: the check after learning must catch and undo it.
    learner, rng = warmed(model="logreg", sampler=sampler, max_abs_feature=1e308)
    probe = [normal_example(rng) for _ in range(20)]
    state, before = logreg_state(learner), learner.predict_proba_many(probe)
    poison = normal_example(rng) | {"f0": 1e300, "new_feature": 1.0}
    assert learner.learn_one(poison, True) is False
    assert learner.n_refused == 1 and learner.state_is_finite()
    assert logreg_state(learner) == state
    assert np.array_equal(learner.predict_proba_many(probe), before)
    assert "new_feature" not in learner._scaler.means  # the defaultdicts are restored too
    assert learner.learn_many([normal_example(rng) for _ in range(20)], [True] * 20) == 20
    assert np.isfinite(learner.predict_proba_many(probe)).all()


def test_binned_model_shrugs_off_1e300_and_its_guard_restores_adagrad_state() -> None:
    """The log scale keeps 1e300 (log1p ~ 691) and river's gradient clipping keeps a weight
    of 1e300 finite, so the binned model learns them harmlessly; a step that leaves
    AdaGrad's accumulators non-finite anyway is undone, accumulators included."""
    learner, rng = warmed(model="binned", sampler=None, max_abs_feature=1e308)
    probe = [normal_example(rng) for _ in range(20)]
    assert learner.learn_one(normal_example(rng) | {"f0": 1e300}, True)
    assert learner.learn_one(normal_example(rng), True, 1e300)
    assert learner.state_is_finite() and np.isfinite(learner.predict_proba_many(probe)).all()

    state, before = logreg_state(learner), learner.predict_proba_many(probe)
    optimizer = learner._logreg.optimizer
    step = optimizer._step_with_dict

    def overflowing_step(w, g):
        out = step(w, g)
        optimizer.g2["f0"] = math.inf
        return out

    optimizer._step_with_dict = overflowing_step
    assert learner.learn_one(normal_example(rng) | {"new_feature": 1.0}, True) is False
    del optimizer._step_with_dict
    assert logreg_state(learner) == state and learner.state_is_finite()
    assert np.array_equal(learner.predict_proba_many(probe), before)
    assert "new_feature" not in learner._scaler.means


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("value", "weight"),
    [(math.nan, 1.0), (math.inf, 1.0), (-math.inf, 1.0), (1e13, 1.0), (-1e300, 1.0),
     (None, 1.0), ("12.5", 1.0), (1.0, math.nan), (1.0, math.inf), (1.0, -1.0)],
)
def test_absurd_examples_are_refused_before_touching_the_model(model, value, weight) -> None:
    learner = OnlineLearner(model, seed=3)
    rng = random.Random(1)
    learner.learn_many([normal_example(rng) for _ in range(30)], [i % 5 == 0 for i in range(30)])
    blob = pickle.dumps(learner)
    assert learner.learn_one(normal_example(rng) | {"f3": value}, True, weight) is False
    assert pickle.dumps(learner) != blob  # only the counter moved
    learner._n_refused -= 1
    assert pickle.dumps(learner) == blob
    assert learner.n_learned == 30


def test_learn_many_counts_what_it_learned() -> None:
    learner = OnlineLearner(seed=2)
    X = [{"a": 1.0}, {"a": math.nan}, {"a": 2.0}, {"a": 1e20}]
    assert learner.learn_many(X, [True, True, False, False]) == 2
    assert (learner.n_learned, learner.n_refused) == (2, 2)


def test_a_refused_example_is_not_counted_by_the_under_sampler() -> None:
    learner, rng = warmed(200)
    seen = dict(learner._sampler._actual_dist)
    learner.learn_one({"f0": math.inf}, False)
    learner.learn_one({"f0": math.nan}, True)
    assert dict(learner._sampler._actual_dist) == seen


# Checkpoints: verified before unpickling, never written or loaded non-finite


class _Touch:
    """Unpickling this creates ``path``: proof of whether a pickle was loaded."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_tampered_checkpoint_is_refused_before_unpickling(tmp_path) -> None:
    path = tmp_path / "online.pkl"
    warmed(300)[0].save(path)
    # The payload works: unpickled, it creates its file.
    pickle.loads(pickle.dumps(_Touch(tmp_path / "control")))
    assert (tmp_path / "control").exists()
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(CheckpointError, match="does not match its sidecar"):
        OnlineLearner.load(path)
    assert not marker.exists()
    # One flipped byte is enough.
    warmed(300)[0].save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        OnlineLearner.load(path)


def test_checkpoint_without_sidecar_is_refused_and_says_the_learner_starts_fresh(tmp_path) -> None:
    path = tmp_path / "online.pkl"
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(CheckpointError, match="no checksum sidecar.*starts fresh"):
        OnlineLearner.load(path)
    assert not marker.exists()
    # A checkpoint written by the previous version: format v1, no sidecar.
    path.write_bytes(pickle.dumps({"version": 1, "learner": OnlineLearner()}))
    with pytest.raises(CheckpointError, match="starts fresh"):
        OnlineLearner.load(path)
    (tmp_path / "online.pkl.sha256").write_text("not a digest\n")
    with pytest.raises(CheckpointError, match="malformed"):
        OnlineLearner.load(path)


def poisoned(learner: OnlineLearner) -> OnlineLearner:
    """What a pre-fix learner looked like after issue 11's example."""
    learner._scaler.vars["f0"] = math.inf
    learner._logreg._weights["f0"] = math.nan
    return learner


def test_a_non_finite_learner_is_never_written_nor_loaded(tmp_path) -> None:
    path = tmp_path / "online.pkl"
    good = warmed(300)[0]
    good.save(path)
    before = path.read_bytes(), (tmp_path / "online.pkl.sha256").read_bytes()
    bad = poisoned(warmed(300)[0])
    assert not bad.state_is_finite()
    with pytest.raises(ValueError, match="not finite"):
        bad.save(path)
    assert (path.read_bytes(), (tmp_path / "online.pkl.sha256").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["online.pkl", "online.pkl.sha256"]
    # Even with a sidecar that vouches for its bytes, a NaN learner does not load.
    write_with_sidecar(path, pickle.dumps({"version": 2, "learner": bad}))
    with pytest.raises(CheckpointError, match="not finite"):
        OnlineLearner.load(path)


def test_a_crash_between_the_two_renames_leaves_the_old_checkpoint_loadable(
        tmp_path, monkeypatch) -> None:
    path = tmp_path / "online.pkl"
    old, rng = warmed(300)
    old.save(path)
    probe = [normal_example(rng) for _ in range(10)]
    new = warmed(400)[0]
    real_replace = os.replace

    def crash_on_the_checkpoint(src, dst):
        if os.fspath(dst) == os.fspath(path):
            raise KeyboardInterrupt("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    monkeypatch.setattr(os, "replace", real_replace)
    # The sidecar already names the new checkpoint, and still the old one, which loads.
    assert len((tmp_path / "online.pkl.sha256").read_text().split()) == 2
    np.testing.assert_array_equal(OnlineLearner.load(path).predict_proba_many(probe),
                                  old.predict_proba_many(probe))
    # The next save completes; its sidecar keeps the digest of the file it replaced.
    new.save(path)
    np.testing.assert_array_equal(OnlineLearner.load(path).predict_proba_many(probe),
                                  new.predict_proba_many(probe))
    listed = (tmp_path / "online.pkl.sha256").read_text().split()
    assert listed[0] == hashlib.sha256(path.read_bytes()).hexdigest() and len(listed) == 2


def test_a_stale_digest_never_vouches_for_other_bytes(tmp_path) -> None:
    """The previous digest is carried over only if it matches the checkpoint on disk."""
    path = tmp_path / "online.pkl"
    sidecar = tmp_path / "online.pkl.sha256"
    path.write_bytes(b"unverified")
    sidecar.write_text("0" * 64 + "\n")
    warmed(300)[0].save(path)
    assert sidecar.read_text().split() == [hashlib.sha256(path.read_bytes()).hexdigest()]


# Property: no example, however odd, leaves the learner non-finite

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1e300, 1e12, -1e12, 1e13, 0.0, 5e-324]),
)
_examples = st.lists(
    st.tuples(st.dictionaries(st.sampled_from(["a", "b", "c"]), _values, min_size=1),
              st.booleans()),
    min_size=1, max_size=30,
)
_PROBE = [{"a": 0.0, "b": 1.0, "c": -1.0}, {"a": 100.0, "b": -3.0, "c": 0.5}, {"a": 1e6}]


@pytest.mark.parametrize(("model", "n"),
                         [("binned", 200), ("logreg", 200), ("hoeffding", 60), ("arf", 15)])
def test_property_no_example_leaves_the_learner_non_finite(model: str, n: int) -> None:
    # Only the regressions are checked after learning; the trees rely on the bound.
    bounds = [1e12, 1e308] if model in ("logreg", "binned") else [1e12]

    @hsettings(max_examples=n, deadline=None)
    @given(_examples, st.sampled_from(bounds))
    def check(examples, max_abs):
        learner = OnlineLearner(model, seed=0, max_abs_feature=max_abs)
        learner.learn_one({"a": 1.0, "b": 2.0, "c": 3.0}, True)
        learner.learn_one({"a": 0.0, "b": 0.0, "c": 0.0}, False)
        for x, y in examples:
            learned = learner.learn_one(x, y)
            assert learner.state_is_finite()
            p = learner.predict_proba_many(_PROBE)
            assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all(), (x, learned, p)
        assert learner.n_learned + learner.n_refused == len(examples) + 2

    check()


@pytest.mark.parametrize("model", ["logreg", "binned"])
def test_an_arithmetic_error_half_way_through_learning_is_undone(model) -> None:
    learner, rng = warmed(300, model=model, sampler=None)
    state = logreg_state(learner)

    def overflow(*args, **kwargs):
        raise OverflowError("half-way")  # after the scaler has learned the example

    learner._logreg.learn_one = overflow
    assert learner.learn_one(normal_example(rng), True) is False
    del learner._logreg.learn_one
    assert logreg_state(learner) == state and learner.n_refused == 1


def test_a_verified_checkpoint_that_no_longer_unpickles_is_a_checkpoint_error(tmp_path) -> None:
    path = tmp_path / "online.pkl"
    write_with_sidecar(path, pickle.dumps({"version": 2, "learner": OnlineLearner()})[:-5])
    with pytest.raises(CheckpointError, match="could not be unpickled.*starts fresh"):
        OnlineLearner.load(path)


def test_the_under_sampled_learner_scores_at_the_real_prior():
    """Trained at a 10 % fraud share, scored back at the stream's 1 %: the review rate is sane."""
    import numpy as np

    rng = np.random.default_rng(0)
    learner = OnlineLearner(seed=0)  # the default: binned, under-sampled to 10 % frauds
    plain = OnlineLearner(seed=0, sampler=None)
    rows = []
    for _ in range(20_000):
        fraud = rng.random() < 0.01
        x = {"amount": float(rng.lognormal(4.0 + (1.0 if fraud else 0.0), 1.0)),
             "noise": float(rng.normal())}
        learner.learn_one(x, fraud)
        plain.learn_one(x, fraud)
        rows.append(x)
    shifted = learner.predict_proba_many(rows[-5000:]).mean()
    assert learner._prior_shift() < -1.5  # legitimate rows kept at ~1/11
    assert 0.004 < shifted < 0.03  # the stream's 1 %, not the sampler's 10 %
    assert abs(shifted - plain.predict_proba_many(rows[-5000:]).mean()) < 0.01


def test_stream_positions_are_checkpointed_with_the_weights(tmp_path) -> None:
    """The follower's place in synthetic-frauds is restored with the learner that learned up to it;
    a checkpoint written before positions existed restores with none."""
    learner = OnlineLearner()
    learner.positions["synthetic-frauds"] = 42
    learner.save(tmp_path / "a.pkl")
    assert OnlineLearner.load(tmp_path / "a.pkl").positions == {"synthetic-frauds": 42}
    old = OnlineLearner()
    del old.positions
    old.save(tmp_path / "old.pkl")
    assert OnlineLearner.load(tmp_path / "old.pkl").positions == {}
