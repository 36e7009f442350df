import math

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from fraudstream.models.scorer import (
    FALLBACK_CHAMPION_FAILED, FALLBACK_ONLINE, FALLBACK_REVIEW, Scorer, ScoredBatch, Thresholds,
    decide,
)


class Const:
    def __init__(self, p, version="batch-1", names=("amount",)):
        self.p, self.version, self.feature_names = p, version, names

    def predict_proba(self, X):
        return np.full(len(X), self.p)

    def predict_proba_many(self, X):
        return np.full(len(X), self.p)


class Rows:
    """Returns given scores, in order, whatever the features (both model protocols)."""

    def __init__(self, scores, version="batch-1"):
        self.scores, self.version, self.feature_names = np.asarray(scores), version, ("amount",)

    def predict_proba(self, X):
        return self.scores[: len(X)]

    def predict_proba_many(self, X):
        return self.scores[: len(X)]


class Raises:
    version, feature_names = "broken-1", ("amount",)

    def predict_proba(self, X):
        raise RuntimeError("xgboost said no")


def test_decisions_follow_thresholds():
    t = Thresholds(review=0.5, decline=0.9)
    assert decide(np.array([0.1, 0.5, 0.89, 0.9, 1.0]), t) == [
        "approve", "review", "review", "decline", "decline"]
    with pytest.raises(ValueError):
        Thresholds(review=0.95, decline=0.9)


def test_decide_never_approves_a_score_that_is_not_finite():
    t = Thresholds(review=0.5, decline=0.9)
    assert decide(np.array([np.nan, -np.inf, np.inf, 0.1]), t) == [
        "review", "review", "review", "approve"]


def test_online_decides_until_a_batch_model_is_plugged_in_then_it_swaps():
    scorer = Scorer(Const(0.2))
    feats = [{"amount": 1.0}] * 3
    first = scorer.score(feats)
    assert first.model_version == "online-v1" and set(first.per_model) == {"online"}
    scorer.swap_champion(Const(0.95, version="batch-7"))
    second = scorer.score(feats)
    assert second.model_version == "batch-7" and second.decisions == ["decline"] * 3
    assert second.versions == ["batch-7"] * 3 and second.fallbacks == [None] * 3
    assert second.per_model["online"].tolist() == [0.2] * 3
    scorer.swap_shadow(Const(0.6, version="shadow-1"))
    third = scorer.score(feats)
    assert third.model_version == "batch-7" and third.per_model["shadow"].tolist() == [0.6] * 3
    scorer.swap_champion(None)
    assert scorer.score(feats).model_version == "online-v1"


def test_scores_are_clipped_to_unit_interval():
    assert Scorer(Const(1.7)).score([{"amount": 1.0}]).scores.tolist() == [1.0]


FEATS = [{"amount": float(i)} for i in range(5)]


def test_a_batch_score_that_is_not_finite_falls_back_to_the_online_learner_per_row():
    scorer = Scorer(Rows([0.1, 0.6, 0.95, 0.2, np.nan]))
    scorer.swap_champion(Rows([0.96, np.nan, -np.inf, np.inf, np.nan], version="batch-3"))
    out = scorer.score(FEATS)
    assert out.scores.tolist()[:4] == [0.96, 0.6, 0.95, 0.2]
    assert out.scores[4] == scorer.thresholds.review
    assert out.decisions == ["decline", "review", "decline", "approve", "review"]
    assert out.fallbacks == [None] + [FALLBACK_ONLINE] * 3 + [FALLBACK_REVIEW]
    assert out.versions == ["batch-3", "online-v1", "online-v1", "online-v1", "batch-3"]
    assert out.model_version == "batch-3" and out.errors == {}
    # per_model keeps what each model said: NaN where it gave no finite score (-inf is not 0).
    np.testing.assert_array_equal(out.per_model["batch"], [0.96, np.nan, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(out.per_model["online"], [0.1, 0.6, 0.95, 0.2, np.nan])


def test_without_a_finite_score_a_row_is_reviewed():
    out = Scorer(Rows([np.nan, -np.inf, 0.1])).score(FEATS[:3])
    assert out.decisions == ["review", "review", "approve"]
    assert out.scores.tolist() == [0.5, 0.5, 0.1]
    assert out.fallbacks == [FALLBACK_REVIEW, FALLBACK_REVIEW, None]
    assert out.versions == ["online-v1"] * 3


def test_a_batch_model_that_raises_hands_the_whole_batch_to_the_online_learner():
    scorer = Scorer(Rows([0.1, np.nan, 0.95]))
    scorer.swap_champion(Raises())
    out = scorer.score(FEATS[:3])
    assert out.decisions == ["approve", "review", "decline"]
    assert out.fallbacks == [FALLBACK_CHAMPION_FAILED, FALLBACK_REVIEW, FALLBACK_CHAMPION_FAILED]
    assert out.versions == ["online-v1", "broken-1", "online-v1"]
    assert out.errors == {"champion": "RuntimeError: xgboost said no"}
    assert np.isnan(out.per_model["batch"]).all()
    # A wrong number of scores is no better than an exception.
    scorer.swap_champion(Rows([0.99], version="short-1"))
    out = scorer.score(FEATS[:3])
    assert out.fallbacks[0] == FALLBACK_CHAMPION_FAILED and "shape" in out.errors["champion"]


def test_an_online_learner_that_raises_on_a_row_loses_only_that_row():
    class Picky:
        def predict_proba_many(self, X):
            if any(x["amount"] == 2.0 for x in X):
                raise ValueError("cannot score 2")
            return np.full(len(X), 0.3)

    out = Scorer(Picky()).score(FEATS[:4])
    assert np.isnan(out.per_model["online"]).tolist() == [False, False, True, False]
    assert out.decisions == ["approve", "approve", "review", "approve"]
    assert out.fallbacks[2] == FALLBACK_REVIEW and "cannot score 2" in out.errors["online"]


def test_a_shadow_or_explanation_that_raises_never_changes_a_decision():
    class NoReasons(Const):
        def explain_many(self, X):
            raise KeyError("amount")

    scorer = Scorer(NoReasons(0.95))
    scorer.swap_shadow(Raises())
    out = scorer.score(FEATS[:2])
    assert out.decisions == ["decline", "decline"] and out.fallbacks == [None, None]
    assert out.shadow_version == "broken-1" and np.isnan(out.per_model["shadow"]).all()
    assert set(out.errors) == {"shadow", "reasons"} and out.reasons == [[], []]


def test_issue_11_a_poisoned_online_learner_reviews_instead_of_approving():
    from fraudstream.models.online import OnlineLearner

    learner = OnlineLearner(seed=0)
    for i in range(300):
        learner.learn_one({"amount": float(i % 50), "night": float(i % 2)}, i % 25 == 0)
    # The state a pre-fix learner reached (and checkpointed) after one 1e300 fraud.
    learner._scaler.vars["amount"] = math.nan
    learner._logreg._weights["amount"] = math.nan
    feats = [{"amount": 10.0, "night": 0.0}] * 3
    out = Scorer(learner).score(feats)
    assert out.decisions == ["review"] * 3 and out.fallbacks == [FALLBACK_REVIEW] * 3
    assert np.isfinite(out.scores).all()
    for reasons in out.reasons:  # nothing non-finite goes on the wire
        assert all(math.isfinite(r["value"]) and math.isfinite(r["contribution"]) for r in reasons)


def test_a_hand_built_scored_batch_gets_per_row_defaults():
    sb = ScoredBatch(np.array([0.1, 0.2]), {}, ["approve", "approve"], "v", [[], []])
    assert sb.fallbacks == [None, None] and sb.versions == ["v", "v"] and sb.errors == {}


_score = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, 0.5, 0.9]))


@hsettings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(_score, min_size=n, max_size=n),
    st.one_of(st.none(), st.lists(_score, min_size=n, max_size=n)),
    st.floats(0.0, 1.0), st.floats(0.0, 1.0))))
def test_property_no_unscorable_row_is_approved_and_scores_stay_in_the_unit_interval(case):
    online, batch, a, b = case
    t = Thresholds(review=min(a, b), decline=max(a, b))
    scorer = Scorer(Rows(online), thresholds=t)
    if batch is not None:
        scorer.swap_champion(Rows(batch, version="b-1"))
    out = scorer.score([{"amount": 1.0}] * len(online))
    assert np.isfinite(out.scores).all() and (out.scores >= 0).all() and (out.scores <= 1).all()
    deciding = [online] if batch is None else [batch, online]
    for i, decision in enumerate(out.decisions):
        finite = [math.isfinite(s[i]) for s in deciding]
        if not any(finite):
            assert decision != "approve" and out.fallbacks[i] == FALLBACK_REVIEW
        elif finite[0]:
            assert out.fallbacks[i] is None
            assert out.scores[i] == min(max(deciding[0][i], 0.0), 1.0)
        else:
            assert out.fallbacks[i] == FALLBACK_ONLINE and out.versions[i] == "online-v1"
    assert out.decisions == decide(out.scores, t)
