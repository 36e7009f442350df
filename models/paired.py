"""Paired comparison of two scorers on the same rows: a stratified bootstrap of the AP gain.

A single holdout with a hundred frauds gives an average precision whose standard error is a
few hundredths, so "the challenger's AP beats the champion's by 0.005" is mostly noise. Both
models are scored on the same rows, so their errors are correlated; resampling *rows* and
scoring both models on each resample keeps that pairing, and the spread of the difference is
much smaller than the spread of either AP (Efron & Tibshirani, *An Introduction to the
Bootstrap*, ch. 13; the same paired resampling as a paired test of two classifiers).

Frauds and legitimate rows are resampled separately (each with replacement, each to its own
count), so every resample has exactly the holdout's frauds count and AP is always defined.
AP is :func:`~.ranking.average_precision`; each model's scores are sorted once
(:class:`~.ranking.RankedScores`) and a resample is a weighting of the rows.

Pure: arrays in, numbers out. No Kafka, environment or metrics.

>>> y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
>>> a = np.array([.1, .2, .9, .8, .3, .7, .4, .2])
>>> b = np.array([.5, .2, .4, .8, .3, .7, .4, .2])
>>> r = paired_ap_gain(y, a, b, resamples=200, seed=0)
>>> round(r.estimate, 4), r.low <= r.estimate <= r.high
(-0.1333, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .ranking import RankedScores

__all__ = ["GainInterval", "paired_ap_gain", "paired_mean_ap_gain", "verdict"]


@dataclass(frozen=True)
class GainInterval:
    """AP(b) - AP(a) on the rows (``estimate``) and its bootstrap interval.

    ``low``/``high`` are the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    of the resampled gains; ``se`` their standard deviation; ``share_not_above_zero`` the
    share of resamples where b did not beat a (a one-sided bootstrap p-value).
    """

    estimate: float
    low: float
    high: float
    se: float
    confidence: float
    resamples: int
    share_not_above_zero: float
    ap_a: float
    ap_b: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``+0.0123 [90% interval -0.0040, +0.0290]``, as the trainer's logs and reasons
        say it."""
        return (f"{self.estimate:+.4f} [{self.confidence:.0%} interval {self.low:+.4f}, "
                f"{self.high:+.4f}]")


def paired_ap_gain(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *,
                   resamples: int = 1000, confidence: float = 0.9, seed: int = 0,
                   check: Callable[[], None] | None = None) -> GainInterval:
    """The gain ``AP(score_b) - AP(score_a)`` on rows ``y``, with a stratified paired bootstrap.

    Each resample draws the frauds' row indices with replacement from the frauds and the
    legitimate rows' from the legitimate rows, and scores both models on that same resample.
    Needs at least one fraud and one legitimate row. Time grows with ``resamples`` x rows
    (2.1 s for 1000 resamples of 30,000 rows on one idle core); ``check()`` is called every
    50 resamples, so a caller's deadline can stop it.
    """
    return paired_mean_ap_gain(y, score_a, [score_b], resamples=resamples,
                               confidence=confidence, seed=seed, check=check)


def paired_mean_ap_gain(y: np.ndarray, score_a: np.ndarray, scores_b: Sequence[np.ndarray], *,
                        resamples: int = 1000, confidence: float = 0.9, seed: int = 0,
                        check: Callable[[], None] | None = None) -> GainInterval:
    """:func:`paired_ap_gain` of the *mean* AP of several models ``scores_b`` (say, one
    recipe trained with several seeds) over ``score_a``, every model scored on each same
    resample; ``ap_b`` is their mean AP."""
    y = np.asarray(y, dtype=bool)
    a = np.asarray(score_a, dtype=np.float64)
    bs = [np.asarray(b, dtype=np.float64) for b in scores_b]
    if not bs:
        raise ValueError("scores_b holds no model")
    if any(len(b) != len(y) for b in bs) or len(a) != len(y):
        raise ValueError(f"row counts differ: y {len(y)}, a {len(a)}, b {[len(b) for b in bs]}")
    if not 0 < y.sum() < len(y):
        raise ValueError("the rows need both frauds and legitimate transactions")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    pa, pbs = RankedScores(y, a), [RankedScores(y, b) for b in bs]
    ap_a = pa.average_precision()
    ap_b = float(np.mean([pb.average_precision() for pb in pbs]))
    rng = np.random.default_rng(seed)
    frauds, legit = np.flatnonzero(y), np.flatnonzero(~y)
    gains = np.empty(resamples)
    for i in range(resamples):
        # Counts, not index lists: a row drawn twice weighs twice, and the sort order of
        # each model is computed once for all resamples.
        if check is not None and i % 50 == 0:
            check()
        drawn = np.concatenate([frauds[rng.integers(0, len(frauds), len(frauds))],
                                legit[rng.integers(0, len(legit), len(legit))]])
        w = np.bincount(drawn, minlength=len(y)).astype(np.float64)
        gains[i] = np.mean([pb.average_precision(w) for pb in pbs]) - pa.average_precision(w)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(gains, [alpha, 1.0 - alpha])
    return GainInterval(
        estimate=ap_b - ap_a, low=float(low), high=float(high),
        se=float(gains.std(ddof=1)) if resamples > 1 else 0.0, confidence=confidence,
        resamples=resamples, share_not_above_zero=float(np.mean(gains <= 0.0)),
        ap_a=ap_a, ap_b=ap_b)


def verdict(gain: GainInterval, margin: float) -> str:
    """``better`` (the lower bound clears ``margin``), ``worse`` (the upper bound is below
    zero) or ``indistinguishable``."""
    if gain.low > margin:
        return "better"
    if gain.high < 0.0:
        return "worse"
    return "indistinguishable"
