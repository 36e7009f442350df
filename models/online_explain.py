"""Reasons for an online score: each feature's additive share of the logit.

A contribution is a feature's weight times its standardised value (plus, for the binned
learner, the weight of its bin); only positive, finite contributions are shown, largest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["logreg_reasons", "top_reasons_many"]


def logreg_reasons(scaler: Any, logreg: Any, X: Sequence[Mapping[str, float]], top: int
                   ) -> list[list[dict[str, float]]]:
    """The ``top`` contributions of each row to a ``StandardScaler | LogisticRegression``."""
    cols = list(X[0])
    weights = np.array([logreg.weights.get(c, 0.0) for c in cols])
    means = np.array([scaler.means.get(c, 0.0) for c in cols])
    stds = np.sqrt(np.array([scaler.vars.get(c, 0.0) for c in cols]))
    raw = np.array([[x[c] for c in cols] for x in X], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or huge rows: zeroed below
        scaled = np.divide(raw - means, stds, out=np.zeros_like(raw), where=stds > 0)
        contrib = scaled * weights
    finite = np.isfinite(contrib)
    if not finite.all():
        # Never shown nor ranked. A finite non-zero contribution implies a finite value.
        contrib = np.where(finite, contrib, 0.0)
    order = np.argsort(-contrib, axis=1)[:, :top]
    return [
        [{"feature": cols[j], "value": float(raw[i, j]), "contribution": float(contrib[i, j])}
         for j in order[i] if contrib[i, j] > 0]
        for i in range(len(X))
    ]


def top_reasons_many(X: Sequence[Mapping[str, float]], names: list[str], contrib: np.ndarray,
                     top: int) -> list[list[dict[str, float]]]:
    """The ``top`` positive, finite contributions of each row of a contributions matrix
    (columns ``names``), largest first; equal ones in descending order of name."""
    if not len(X):
        return []
    with np.errstate(invalid="ignore"):
        shown = np.isfinite(contrib) & (contrib > 0)
    ranked = np.where(shown, contrib, -np.inf)
    # Largest contribution first, then the larger name: lexsort's last key sorts first.
    by_name = np.argsort(np.argsort(names))  # each column's rank among the names
    order = np.lexsort((np.broadcast_to(-by_name, ranked.shape), -ranked), axis=-1)[:, :top]
    return [
        [{"feature": names[j], "value": float(X[i][names[j]]),
          "contribution": float(contrib[i, j])} for j in row if shown[i, j]]
        for i, row in enumerate(order.tolist())
    ]
