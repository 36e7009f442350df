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
