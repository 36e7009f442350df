"""Choosing the synthetic ratio by validation inside the training period (never the holdout).

Models fitted before the training period's last ``validation_days`` are compared on those
days, one per candidate ratio (0 included); :mod:`~.refresh` trains them and keeps the best.

Pure: arrays in, plain values out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .batch import XGBoostModel
from .days import DAY_S
from .ranking import average_precision

__all__ = ["validation_plan", "validate_ratios", "best_nonzero"]


def validation_plan(ts: np.ndarray, y: np.ndarray, train_end: float,
                    candidates: tuple[float, ...], validation_days: float) -> dict[str, Any]:
    """Which training rows fit the models compared by validation (``inner``) and which judge
    them (the training period's last ``validation_days``); ``usable`` False says why not."""
    inner = ts < train_end - validation_days * DAY_S
    plan: dict[str, Any] = {"inner": inner, "usable": False, "why": ""}
    n_inner, n_val = int(y[inner].sum()), int(y[~inner].sum())
    if len(candidates) < 2:
        plan["why"] = "fewer than two candidate ratios"
    elif n_inner < 10:
        plan["why"] = f"{n_inner} frauds before the validation days (need 10)"
    elif n_val < 5 or n_val == int((~inner).sum()):
        plan["why"] = f"{n_val} frauds in the validation days (need 5 and legitimate rows)"
    else:
        plan["usable"] = True
    return plan


def validate_ratios(plan: dict[str, Any], candidates: tuple[float, ...],
                    train_with: Callable[..., tuple[XGBoostModel, int]],
                    X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Each candidate ratio's AP on the validation days; the best, ties to the smaller ratio."""
    inner, val = plan["inner"], ~plan["inner"]
    aps: dict[float, float] = {}
    for ratio in candidates:
        model, _ = train_with(ratio, inner)
        aps[ratio] = average_precision(y[val], model.predict_proba(X[val]))
    chosen = candidates[0]
    for ratio in candidates[1:]:
        if aps[ratio] > aps[chosen]:
            chosen = ratio
    return {"average_precision": {f"{r:g}": ap for r, ap in aps.items()}, "chosen": chosen,
            "n_rows": int(val.sum()),
            "n_frauds": int(y[val].sum())}


def best_nonzero(validation: dict[str, Any] | None, candidates: tuple[float, ...],
                 top_ratio: float) -> float:
    aps = (validation or {}).get("average_precision") or {}
    nonzero = [r for r in candidates if r > 0 and f"{r:g}" in aps]
    return max(nonzero, key=lambda r: aps[f"{r:g}"]) if nonzero else top_ratio
