"""Ranking metrics: how well fraud scores put the frauds first, one definition of each.

The refresh cycle (promotion), the paired bootstrap, the detection report and the
augmentation study all score models with these functions:

* :func:`average_precision`: the area under the precision-recall curve, as scikit-learn
  computes it, optionally weighted (the bootstrap's resamples are weights);
* :func:`card_precision_at_k`: the Fraud-Detection Handbook's card precision@k per day;
* :func:`alert_budget_metrics`: precision and recall when each day only a fixed budget of
  the top-scored transactions is reviewed;
* :func:`score_metrics`: all of :data:`METRICS` for one set of scores.

Per-day metrics take a day number per row (:func:`~.days.day_index`). Pure: arrays in,
numbers out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

__all__ = [
    "METRICS",
    "RankedScores",
    "alert_budget_metrics",
    "average_precision",
    "card_precision_at_k",
    "score_metrics",
]

METRICS: dict[str, str] = {
    "roc_auc": "ROC AUC over all test transactions",
    "average_precision": "average precision (area under the precision-recall curve) over all "
    "test transactions; the headline number under heavy imbalance",
    "card_precision_at_k": "card precision@k per day (handbook): each test day, the k cards "
    "with the highest maximum score; the share of them with a fraud that day, averaged over "
    "days. Cards found this way are not counted again on later days",
    "precision_at_threshold": "share of transactions scored >= threshold that are frauds "
    "(NaN when none is)",
    "recall_at_threshold": "share of frauds scored >= threshold",
    "precision_at_budget": "each test day the alert budget's top-scored transactions are "
    "reviewed: the share of them that are frauds",
    "recall_at_budget": "the share of all test frauds that fall inside the daily alert budget",
}
"""The metric keys of :func:`score_metrics`, and what they mean."""


class RankedScores:
    """One model's scores sorted once, so that the average precision of many weightings of
    the same rows (bootstrap resamples) costs a cumulative sum each."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        y = np.asarray(y, dtype=bool)
        score = np.asarray(score, dtype=np.float64)
        if np.isnan(score).any():
            raise ValueError("scores must not be NaN")
        self.y = y
        self.order = np.argsort(-score, kind="stable")
        sorted_scores = score[self.order]
        # The last position of each distinct score: thresholds are distinct scores.
        self.ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(score) - 1]
        self.y_sorted = y[self.order].astype(np.float64)

    def average_precision(self, weight: np.ndarray | None = None) -> float:
        """``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores in decreasing order, each
        row counted ``weight`` times; NaN when the (weighted) rows hold no fraud."""
        ws = np.ones(len(self.y)) if weight is None else np.asarray(weight, np.float64)[self.order]
        tp = np.cumsum(ws * self.y_sorted)[self.ends]
        total = np.cumsum(ws)[self.ends]
        if tp[-1] <= 0:
            return math.nan
        recall = tp / tp[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(total > 0, tp / total, 0.0)
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def average_precision(y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Average precision as scikit-learn computes it (ties share one threshold), weighted.

    NaN when the (weighted) rows hold no fraud; ``ValueError`` for a NaN score.

    >>> average_precision(np.array([0, 1, 1]), np.array([.2, .9, .5]))
    1.0
    """
    return RankedScores(y, score).average_precision(weight)


def card_precision_at_k(
    day: np.ndarray,
    card: np.ndarray,
    y: np.ndarray,
    score: np.ndarray,
    k: int = 100,
    remove_detected: bool = True,
) -> tuple[float, list[float]]:
    """The handbook's card precision@k: ``(mean over days, per-day values)``.

    Each day, every card is scored by its highest transaction score and labelled by whether
    it had a fraud that day; the ``k`` top cards are the alerts and the day's value is the
    number of compromised cards among them divided by ``k`` (also when fewer than ``k`` cards
    were active, as in the handbook). With ``remove_detected`` a card found on one day is
    left out of the following days (it has been blocked).

    >>> card_precision_at_k([0, 0, 0, 1, 1], ["a", "b", "c", "a", "c"], [1, 0, 0, 1, 1],
    ...                     [0.9, 0.8, 0.1, 0.7, 0.2], k=2)
    (0.5, [0.5, 0.5])
    """
    frame = pd.DataFrame(
        {"day": np.asarray(day), "card": np.asarray(card), "y": np.asarray(y, dtype=np.int64),
         "score": np.asarray(score, dtype=np.float64)}
    )  # fmt: skip
    detected: set[Any] = set()
    per_day = []
    for _, rows in frame.groupby("day", sort=True):
        if remove_detected and detected:
            rows = rows[~rows["card"].isin(detected)]
        cards = rows.groupby("card", sort=True)[["score", "y"]].max()
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["y"] > 0]
        per_day.append(len(hits) / k)
        if remove_detected:
            detected.update(hits)
    return (float(np.mean(per_day)) if per_day else math.nan), per_day


def alert_budget_metrics(
    day: np.ndarray, y: np.ndarray, score: np.ndarray, budget: float = 100
) -> dict[str, float]:
    """Precision and recall when each day only the top-scored transactions are reviewed.

    ``budget >= 1`` is a number of alerts per day; ``0 < budget < 1`` a share of the day's
    transactions (rounded up). Returns ``precision``, ``recall`` and ``n_alerts``.

    >>> alert_budget_metrics([0, 0, 0, 1, 1], [1, 0, 1, 0, 1], [0.9, 0.8, 0.1, 0.7, 0.2], 1)
    {'precision': 0.5, 'recall': 0.3333333333333333, 'n_alerts': 2}
    """
    if not budget > 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    day, y, score = np.asarray(day), np.asarray(y, dtype=bool), np.asarray(score, dtype=float)
    alerted = np.zeros(len(y), dtype=bool)
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        k = int(budget) if budget >= 1 else math.ceil(budget * len(rows))
        top = rows[np.argsort(-score[rows], kind="stable")[:k]]
        alerted[top] = True
    n_alerts = int(alerted.sum())
    return {
        "precision": float(y[alerted].mean()) if n_alerts else math.nan,
        "recall": float(y[alerted].sum() / y.sum()) if y.any() else math.nan,
        "n_alerts": n_alerts,
    }


def score_metrics(
    y: np.ndarray,
    score: np.ndarray,
    day: np.ndarray,
    card: np.ndarray,
    *,
    threshold: float = 0.5,
    top_k_cards: int = 100,
    alert_budget: float = 100,
) -> dict[str, float]:
    """All :data:`METRICS` of one set of scores (NaN where undefined), plus the alert counts
    ``n_alerts_at_threshold`` and ``n_alerts_at_budget``."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    both = 0 < y.sum() < len(y)
    flagged = score >= threshold
    budget = alert_budget_metrics(day, y, score, alert_budget)
    return {
        "roc_auc": float(roc_auc_score(y, score)) if both else math.nan,
        "average_precision": average_precision(y, score) if both else math.nan,
        "card_precision_at_k": card_precision_at_k(day, card, y, score, top_k_cards)[0],
        "precision_at_threshold": float(y[flagged].mean()) if flagged.any() else math.nan,
        "recall_at_threshold": float(y[flagged].sum() / y.sum()) if y.any() else math.nan,
        "precision_at_budget": budget["precision"],
        "recall_at_budget": budget["recall"],
        "n_alerts_at_threshold": int(flagged.sum()),
        "n_alerts_at_budget": budget["n_alerts"],
    }
