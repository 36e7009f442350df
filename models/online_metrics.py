"""Prequential quality of the online learner: how well the scores it gave *before* learning
rank the frauds, over a sliding window of labels."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

__all__ = ["PrequentialMetrics"]


class PrequentialMetrics:
    """Ranking quality of scores given *before* their labels, over the last ``window`` labels.

    Undefined values (no frauds in the window for AP and recall, nothing flagged for
    precision, an empty window) are ``nan``.

    >>> m = PrequentialMetrics(window=4)
    >>> for s, y in [(0.9, True), (0.2, False), (0.7, False), (0.6, True)]:
    ...     m.update(s, y)
    >>> round(m.average_precision(), 4), m.recall_at(0.65), m.precision_at(0.65)
    (0.8333, 0.5, 0.5)
    """

    def __init__(self, window: int = 10_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._scores: deque[float] = deque(maxlen=window)
        self._labels: deque[bool] = deque(maxlen=window)

    @property
    def n(self) -> int:
        """Labelled scores in the window."""
        return len(self._labels)

    @property
    def n_positives(self) -> int:
        """Frauds in the window."""
        return sum(self._labels)

    def update(self, score: float, y: bool) -> None:
        """Add the score a transaction got and its (later) label."""
        self._scores.append(float(score))
        self._labels.append(bool(y))

    def update_many(self, scores: Iterable[float], ys: Iterable[bool]) -> None:
        """Add several (score, label) pairs in order."""
        for score, y in zip(scores, ys, strict=True):
            self.update(score, y)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._labels)
        return (
            np.fromiter(self._scores, dtype=np.float64, count=n),
            np.fromiter(self._labels, dtype=bool, count=n),
        )

    def base_rate(self) -> float:
        """Fraud share of the window (the AP of a random ranking)."""
        return self.n_positives / self.n if self.n else math.nan

    def average_precision(self) -> float:
        """Average precision, as ``sklearn.metrics.average_precision_score``.

        AP = sum over distinct score thresholds of (R_k - R_{k-1}) * P_k, ties grouped.
        """
        scores, labels = self._arrays()
        if not labels.any():
            return math.nan
        order = np.argsort(-scores, kind="stable")
        scores, labels = scores[order], labels[order]
        # Last index of each run of equal scores: one threshold per distinct score.
        last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
        tps = np.cumsum(labels)[last]
        precision = tps / (last + 1)
        recall = tps / tps[-1]
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def recall_at(self, threshold: float) -> float:
        """Share of the window's frauds scored ``>= threshold``."""
        scores, labels = self._arrays()
        positives = labels.sum()
        if not positives:
            return math.nan
        return float((labels & (scores >= threshold)).sum() / positives)

    def precision_at(self, threshold: float) -> float:
        """Share of frauds among the window's scores ``>= threshold``."""
        scores, labels = self._arrays()
        flagged = scores >= threshold
        if not flagged.any():
            return math.nan
        return float(labels[flagged].mean())

    def __repr__(self) -> str:
        return f"PrequentialMetrics(window={self.window}, n={self.n})"
