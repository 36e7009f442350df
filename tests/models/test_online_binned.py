"""The binned logistic regression: its fast scoring path is river's arithmetic."""

from __future__ import annotations

import math
import random

import pytest

from fraudstream.models.online import OnlineLearner
from fraudstream.models.online_binned import BinnedLogistic, signed_log


def trained(seed: int = 0) -> tuple[BinnedLogistic, random.Random]:
    rng = random.Random(seed)
    model = BinnedLogistic()
    for _ in range(3000):
        y = rng.random() < 0.1
        x = {"amount": rng.lognormvariate(3 + 2 * y, 1.0), "count": float(rng.randrange(50)),
             "ratio": rng.random(), "signed": rng.gauss(0, 100)}
        model.learn_one(x, y)
    return model, rng


def test_fast_scores_and_terms_equal_rivers_pipeline():
    model, rng = trained()
    for _ in range(200):
        x = {"amount": rng.lognormvariate(3, 2.0), "count": float(rng.randrange(80)),
             "ratio": rng.random(), "signed": rng.gauss(0, 1000)}
        river_p = model.logreg.predict_proba_one(model.transform_one(x))[True]
        assert model.predict_proba_one(x)[True] == pytest.approx(river_p, abs=1e-12)
        logit, terms = model.terms_one(x)
        assert logit == pytest.approx(model.logreg.intercept + sum(terms.values()), abs=1e-12)
        assert set(terms) == set(x)


def test_a_value_seen_in_no_bin_yet_and_non_finite_values():
    model, _ = trained()
    x = {"amount": 1e11, "count": 3.0, "ratio": 0.5, "signed": -2.0}
    assert 0.0 <= model.predict_proba_one(x)[True] <= 1.0  # an unseen bin weighs 0
    for bad in (math.nan, math.inf, -math.inf):
        p = model.predict_proba_one(x | {"count": bad})[True]
        assert math.isnan(p)  # the scorer falls back (review), never approves


def test_heavy_tails_move_the_logit_by_a_bounded_amount():
    model, _ = trained()
    base = {"amount": 50.0, "count": 3.0, "ratio": 0.5, "signed": 1.0}
    moved = model.terms_one(base | {"amount": 1e12})[0] - model.terms_one(base)[0]
    assert abs(moved) < 60  # log1p(1e12) ~ 27.6 standard units at most, times a weight
    assert signed_log(-1e12) == -signed_log(1e12)


def test_learner_reasons_reuse_the_scored_batch_and_follow_learning():
    learner = OnlineLearner(seed=0)
    rng = random.Random(1)
    X = [{"amount": rng.lognormvariate(3, 1), "count": float(rng.randrange(9))}
         for _ in range(400)]
    learner.learn_many(X, [x["amount"] > 60 for x in X])
    batch = X[:50]
    learner.predict_proba_many(batch)
    cached = learner.explain_many(batch)
    fresh = learner.explain_many(list(batch))  # another list: computed again
    assert cached == fresh and any(cached)
    assert all(r["contribution"] > 0 for reasons in cached for r in reasons)
    learner.learn_one(X[0], True)  # the state moved on: the cache is not used
    assert learner.explain_many(batch) == learner.explain_many(list(batch))


def _reference_reasons(x, contrib, top):
    """The row-by-row reasons the vectorised ones replace: positive and finite, largest
    first, equal ones by descending name."""
    ranked = sorted(((c, k) for k, c in contrib.items() if math.isfinite(c) and c > 0),
                    reverse=True)[:top]
    return [{"feature": k, "value": float(x[k]), "contribution": float(c)} for c, k in ranked]


def test_batch_terms_equal_the_row_by_row_terms_with_hostile_values():
    model, rng = trained()
    X = [{"amount": rng.lognormvariate(3, 2.0), "count": float(rng.randrange(80)),
          "ratio": rng.random(), "signed": rng.gauss(0, 1000)} for _ in range(300)]
    X[3] = X[3] | {"count": math.nan}
    X[4] = X[4] | {"amount": math.inf}
    X[5] = X[5] | {"signed": -math.inf, "ratio": -0.0}
    X[6] = X[6] | {"amount": 1e300, "count": 0.0}
    logits, names, contrib = model.terms_many(X)
    assert names == list(X[0]) and contrib.shape == (len(X), 4)
    for i, x in enumerate(X):
        logit, terms = model.terms_one(x)
        if i in (3, 4, 5):
            assert math.isnan(logits[i]) and math.isnan(logit)
            for j, k in enumerate(names):
                assert math.isnan(contrib[i, j]) == math.isnan(terms[k])
            continue
        assert logits[i] == pytest.approx(logit, rel=1e-12, abs=1e-12)
        assert contrib[i].tolist() == pytest.approx([terms[k] for k in names], abs=1e-12)


def test_batch_terms_refuse_rows_with_other_features_and_non_numbers():
    model, _ = trained()
    assert model._terms_shared([{"amount": 1.0, "count": 2.0}, {"amount": 1.0}]) is None
    with pytest.raises((TypeError, ValueError)):
        model.terms_many([{"amount": "12", "count": 2.0}, {"amount": [1.0], "count": 2.0}])
    logits, names, contrib = model.terms_many([])
    assert logits.shape == (0,) and names == []


def test_learner_batch_scores_and_reasons_equal_the_row_by_row_ones():
    learner = OnlineLearner(seed=0)
    rng = random.Random(2)
    X = [{"amount": rng.lognormvariate(3, 1), "count": float(rng.randrange(9)),
          "night": float(rng.random() < 0.2)} for _ in range(600)]
    learner.learn_many(X[:2], [True, False])  # one step: AdaGrad gives equal bin weights (ties)
    for stage in ("ties", "trained"):
        batch = X[400:]
        scores = learner.predict_proba_many(batch)
        reasons = learner.explain_many(batch)
        predictor, shift = learner._predictor, learner._prior_shift()
        for x, p, got in zip(batch, scores, reasons):
            logit, terms = predictor.terms_one(x)
            assert p == pytest.approx(1 / (1 + math.exp(-(logit + shift))), abs=1e-12)
            want = _reference_reasons(x, terms, 3)
            assert [r["feature"] for r in got] == [r["feature"] for r in want], stage
            assert [r["contribution"] for r in got] == pytest.approx(
                [r["contribution"] for r in want], abs=1e-12)
        learner.learn_many(X[:400], [x["amount"] > 60 for x in X[:400]])
    mixed = [X[0], {"amount": 5.0}, X[1] | {"extra": 2.0}]  # rows with other features
    for x, p, got in zip(mixed, learner.predict_proba_many(mixed), learner.explain_many(mixed)):
        logit, terms = learner._predictor.terms_one(x)
        assert p == pytest.approx(1 / (1 + math.exp(-(logit + learner._prior_shift()))), abs=1e-12)
        assert got == _reference_reasons(x, terms, 3)


def test_batch_terms_refuse_what_row_terms_refuse():
    model, _ = trained()
    row = {"amount": 12.0, "count": 2.0}
    for bad in ("12", None, 10 ** 400):  # numpy alone would read the first two as numbers
        with pytest.raises((TypeError, ValueError, OverflowError)):
            model.terms_one(row | {"amount": bad})
        with pytest.raises((TypeError, ValueError)):
            model._terms_shared([row, row | {"amount": bad}])
