import numpy as np
import pytest

from fraudstream.models.scorer import Scorer, Thresholds, decide


class Const:
    def __init__(self, p, version="batch-1", names=("amount",)):
        self.p, self.version, self.feature_names = p, version, names

    def predict_proba(self, X):
        return np.full(len(X), self.p)

    def predict_proba_many(self, X):
        return np.full(len(X), self.p)


def test_decisions_follow_thresholds():
    t = Thresholds(review=0.5, decline=0.9)
    assert decide(np.array([0.1, 0.5, 0.89, 0.9, 1.0]), t) == [
        "approve", "review", "review", "decline", "decline"]
    with pytest.raises(ValueError):
        Thresholds(review=0.95, decline=0.9)


def test_online_decides_until_a_batch_model_is_plugged_in_then_it_swaps():
    scorer = Scorer(Const(0.2))
    feats = [{"amount": 1.0}] * 3
    first = scorer.score(feats)
    assert first.model_version == "online-v1" and set(first.per_model) == {"online"}
    scorer.swap_batch(Const(0.95, version="batch-7"))
    second = scorer.score(feats)
    assert second.model_version == "batch-7" and second.decisions == ["decline"] * 3
    assert second.per_model["online"].tolist() == [0.2] * 3
    scorer.swap_shadow(Const(0.6, version="shadow-1"))
    third = scorer.score(feats)
    assert third.model_version == "batch-7" and third.per_model["shadow"].tolist() == [0.6] * 3
    scorer.swap_batch(None)
    assert scorer.score(feats).model_version == "online-v1"


def test_scores_are_clipped_to_unit_interval():
    assert Scorer(Const(1.7)).score([{"amount": 1.0}]).scores.tolist() == [1.0]
