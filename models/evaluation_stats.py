"""Numbers across windows and across seeds: means, spreads, paired differences, t intervals.

One :func:`~.evaluation.evaluate_augmentation` result holds several windows of one seed:
:func:`summarize` gives each variant's mean and spread across them, and its paired difference
from ``none`` in the same window. Several results of other seeds (each its own simulated
data, diffusion fits and classifiers) are pooled by :func:`summarize_seeds`, with the unit
one seed's mean over its windows, so that one lucky split never decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from .formats import jsonable
from .ranking import METRICS

__all__ = ["PAIRED_METRICS", "mean_std", "summarize", "summarize_quality", "summarize_seeds", "t_interval"]

PAIRED_METRICS = ("average_precision", "card_precision_at_k")
"""The metrics compared with ``none`` window by window: the two that decide whether
rebalancing pays."""


def summarize(per_window: Sequence[Mapping[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    """Mean, standard deviation (ddof=1; 0 for one window) and values of each metric.

    Also ``vs_none``: per variant, the paired difference from ``none`` in the same window
    (mean, std and how many windows it is ahead), for :data:`PAIRED_METRICS`.
    """
    out: dict[str, Any] = {}
    for variant in variants:
        out[variant] = {}
        for metric in METRICS:
            values = [w["variants"][variant][metric] for w in per_window]
            out[variant][metric] = mean_std(values)
        deltas = {}
        for metric in PAIRED_METRICS:
            diffs = [
                w["variants"][variant][metric] - w["variants"]["none"][metric] for w in per_window
            ]
            stats = mean_std(diffs)
            stats["windows_ahead"] = int(sum(d > 0 for d in diffs))
            deltas[metric] = stats
        out[variant]["vs_none"] = deltas
    return out


def summarize_seeds(
    results: Sequence[Mapping[str, Any]], confidence: float = 0.95
) -> dict[str, Any]:
    """Means across seeds with a t interval, so a single lucky split never decides.

    Each of ``results`` is one :func:`~.evaluation.evaluate_augmentation` result of another
    seed (its own simulated data, diffusion fits and classifiers). Per variant and metric, the
    unit is one seed's mean over its windows; ``vs_none`` is the same for the paired difference from
    ``none`` (``seeds_ahead``: seeds where the variant's mean beat ``none``'s). Quality
    numbers are pooled the same way, with the gates' pass count over all windows.
    """
    if not results:
        raise ValueError("no results to summarise")
    variants = list(results[0]["variants"])
    if any(list(r["variants"]) != variants for r in results):
        raise ValueError("the results do not share their variants")
    out: dict[str, Any] = {
        "seeds": [r["config"]["seed"] for r in results], "confidence": confidence,
        "n_windows": sum(len(r["per_window"]) for r in results), "variants": variants,
        "summary": {},
    }
    for variant in variants:
        row: dict[str, Any] = {}
        for metric in METRICS:
            row[metric] = t_interval([r["summary"][variant][metric]["mean"] for r in results],
                                      confidence)
        row["vs_none"] = {}
        for metric in PAIRED_METRICS:
            means = [r["summary"][variant]["vs_none"][metric]["mean"] for r in results]
            stats = t_interval(means, confidence)
            stats["seeds_ahead"] = int(sum(m is not None and m > 0 for m in means))
            stats["windows_ahead"] = int(sum(
                r["summary"][variant]["vs_none"][metric]["windows_ahead"] for r in results))
            row["vs_none"][metric] = stats
        out["summary"][variant] = row
    out["quality"] = {k: t_interval([r["quality_summary"][k]["mean"] for r in results], confidence)
                      for k in ("c2st_auc", "dcr_share")}
    out["quality"]["gates_passed_windows"] = int(sum(r["quality_summary"]["gates_passed_windows"]
                                                     for r in results))
    return jsonable(out)


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and standard deviation (ddof=1; 0 for one value) of the finite ``values``, and
    the values (None and NaN count as missing)."""
    arr = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    ok = arr[np.isfinite(arr)]
    return {
        "mean": float(ok.mean()) if len(ok) else math.nan,
        "std": float(ok.std(ddof=1)) if len(ok) > 1 else (0.0 if len(ok) else math.nan),
        "values": arr.tolist(),
    }


def t_interval(values: Sequence[float | None], confidence: float) -> dict[str, Any]:
    """:func:`mean_std` with the Student t interval of the mean (NaN for one value)."""
    stats = mean_std(values)
    n = int(np.isfinite(np.asarray(stats["values"], dtype=np.float64)).sum())
    half = (float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * stats["std"] / math.sqrt(n)
            if n > 1 else math.nan)
    return {"mean": stats["mean"], "std": stats["std"], "low": stats["mean"] - half,
            "high": stats["mean"] + half, "n": n, "values": stats["values"]}


_QUALITY_KEYS = (
    "c2st_auc", "c2st_reference_auc", "c2st_train_auc", "dcr_share", "dcr_reference_share",
    "dcr_median_ratio", "ks_mean", "wasserstein_mean", "corr_distance",
)  # fmt: skip


def summarize_quality(per_window: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and spread across windows of the synthetic frauds' quality numbers, and how many
    windows passed the gates."""
    out: dict[str, Any] = {k: mean_std([w["quality"][k] for w in per_window])
                           for k in _QUALITY_KEYS}
    out["gates_passed_windows"] = int(sum(bool(w["quality"]["gates_passed"]) for w in per_window))
    return out
