"""Ranking metrics: average precision as scikit-learn's, card precision@k, the alert budget."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudstream.models.ranking import (
    METRICS, RankedScores, alert_budget_metrics, average_precision, card_precision_at_k,
    score_metrics)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_is_scikit_learns(seed, ties):
    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.1
    y[:2] = [True, False]
    score = rng.random(len(y)) + 0.4 * y
    if ties:
        score = np.round(score, 1)  # many tied scores: one threshold each
    weight = rng.integers(0, 4, len(y)).astype(float)
    weight[0] = 1.0
    assert average_precision(y, score) == pytest.approx(
        average_precision_score(y, score), abs=1e-12)
    assert average_precision(y, score, weight) == pytest.approx(
        average_precision_score(y, score, sample_weight=weight), abs=1e-12)


def test_ranked_scores_weigh_rows_and_refuse_nan():
    y = np.array([0, 1, 1, 0])
    score = np.array([0.9, 0.8, 0.3, 0.1])
    ranked = RankedScores(y, score)
    assert ranked.average_precision() == average_precision(y, score)
    # Weight 0 drops a row: without the top legitimate row both frauds lead.
    assert ranked.average_precision(np.array([0.0, 1, 1, 1])) == 1.0
    assert math.isnan(ranked.average_precision(np.array([1.0, 0, 0, 1])))  # no fraud left
    with pytest.raises(ValueError, match="NaN"):
        RankedScores(y, np.array([0.1, np.nan, 0.2, 0.3]))


def test_card_precision_at_k_by_hand():
    # day 0: cards a (max score 0.9, fraud), b (0.8, legit), c (0.3 and 0.05, one fraud);
    # day 1: a again (0.95, fraud), c (0.7, fraud), d (0.6, legit), e (0.1, fraud).
    day = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    card = ["a", "b", "b", "c", "c", "a", "c", "d", "e"]
    y = [1, 0, 0, 1, 0, 1, 1, 0, 1]
    score = [0.9, 0.8, 0.2, 0.3, 0.05, 0.95, 0.7, 0.6, 0.1]
    # top 2 day 0: a, b -> 1/2. a is detected and left out on day 1: top 2 c, d -> 1/2.
    assert card_precision_at_k(day, card, y, score, k=2) == (0.5, [0.5, 0.5])
    # Without removal, day 1's top 2 are a and c -> 2/2.
    assert card_precision_at_k(day, card, y, score, k=2, remove_detected=False) == (
        0.75, [0.5, 1.0]
    )
    # k above the active cards still divides by k (handbook): day 0 has 2 compromised cards.
    # Day 0 finds a and c; day 1 leaves both out and finds e alone.
    assert card_precision_at_k(day, card, y, score, k=10) == (pytest.approx(0.15), [0.2, 0.1])


def test_alert_budget_counts_per_day_and_as_a_share():
    day = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.5, 0.4])
    two = alert_budget_metrics(day, y, score, budget=2)  # alerts: 0.9, 0.8 | 0.7, 0.6
    assert two == {"precision": 0.5, "recall": pytest.approx(2 / 3), "n_alerts": 4}
    share = alert_budget_metrics(day, y, score, budget=0.25)  # ceil(0.25 * 4) = 1 a day
    assert share == {"precision": 0.5, "recall": pytest.approx(1 / 3), "n_alerts": 2}


def test_score_metrics_of_a_perfect_and_a_useless_ranking():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.05
    day = np.repeat(np.arange(4), 500)
    card = rng.integers(0, 300, 2000).astype(str)
    perfect = score_metrics(y, y.astype(float), day, card, alert_budget=1000)
    assert perfect["roc_auc"] == 1 and perfect["average_precision"] == 1
    assert perfect["recall_at_threshold"] == 1 and perfect["precision_at_threshold"] == 1
    assert perfect["recall_at_budget"] == 1
    blind = score_metrics(y, np.zeros(2000), day, card)
    assert blind["roc_auc"] == 0.5 and blind["recall_at_threshold"] == 0
    assert math.isnan(blind["precision_at_threshold"])  # nothing flagged
    assert set(METRICS) <= set(perfect)
