"""Per-feature quantile-to-Gaussian normalisation with an exact inverse.

Like sklearn's ``QuantileTransformer(output_distribution="normal")`` (the TabDDPM recipe),
but written with ``np.interp`` on a stored quantile grid so that the inverse is exact on the
training range and the state is a few plain arrays a checkpoint can hold.

Feature kinds and what the inverse guarantees:

``"continuous"``             any real value inside the training range.
``"integer"``                a whole number >= 0 (a count).
``"binary"``                 exactly 0 or 1.
``"bounded"``                a value in [0, 1] (a ratio); ``("bounded", lo, hi)`` for [lo, hi].

Discrete values need no special code on the way in: a value held by many rows owns a flat
stretch of the quantile grid and maps to the middle of its probability mass, and on the way
out that whole stretch of probability maps back to the value itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import ndtr, ndtri

__all__ = ["FEATURE_KINDS", "FeatureKind", "QuantileGaussian", "parse_kind"]

FEATURE_KINDS = ("continuous", "integer", "binary", "bounded")
FeatureKind = str | tuple[str, float, float]


def parse_kind(kind: FeatureKind) -> tuple[str, float, float]:
    """``kind`` as ``(name, lo, hi)``: the valid range of the feature's values."""
    if isinstance(kind, str):
        name, lo, hi = kind, None, None
    else:
        name, lo, hi = kind
    default = {
        "continuous": (-math.inf, math.inf),
        "integer": (0.0, math.inf),
        "binary": (0.0, 1.0),
        "bounded": (0.0, 1.0),
    }
    if name not in default:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
    if lo is None:
        lo, hi = default[name]
    elif name != "bounded":
        raise ValueError(f"only 'bounded' takes explicit bounds, got {kind!r}")
    if not float(lo) < float(hi):
        raise ValueError(f"bounded kind needs lo < hi, got {kind!r}")
    return name, float(lo), float(hi)


class QuantileGaussian:
    """Maps each column to N(0, 1) through its empirical quantiles, and back.

    Args:
        kinds: one kind per column (see the module docstring); ``None`` means all continuous.
        n_quantiles: size of the quantile grid (at most the number of training rows);
            ``None`` uses TabDDPM's rule, ``n_rows // 30`` clipped to [10, 1000]. A grid
            coarser than the data smooths the marginals: with one knot per row the inverse
            would put mass only between the training values themselves, which overfits.
            The inverse is exact on the training range for any grid size.

    Example:
        >>> X = np.column_stack([np.arange(10.0), np.arange(10) % 2])
        >>> qg = QuantileGaussian(["continuous", "binary"]).fit(X)
        >>> bool(np.allclose(qg.inverse_transform(qg.transform(X)), X))
        True
    """

    def __init__(
        self, kinds: Sequence[FeatureKind] | None = None, n_quantiles: int | None = None
    ) -> None:
        self.kinds = kinds
        self.n_quantiles = n_quantiles

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X: np.ndarray) -> QuantileGaussian:
        """Learn each column's quantile grid; checks values against their kinds."""
        X = _check_2d(X)
        n, d = X.shape
        kinds = ["continuous"] * d if self.kinds is None else list(self.kinds)
        if len(kinds) != d:
            raise ValueError(f"{len(kinds)} feature kinds for {d} columns")
        self.kinds_ = [parse_kind(k) for k in kinds]
        for j, (name, lo, hi) in enumerate(self.kinds_):
            col = X[:, j]
            if col.min() < lo or col.max() > hi:
                raise ValueError(f"column {j} ({name}) has values outside [{lo}, {hi}]")
            if name in ("integer", "binary") and not np.all(col == np.round(col)):
                raise ValueError(f"column {j} ({name}) has non-whole values")

        wanted = self.n_quantiles or min(max(n // 30, 10), 1000)
        m = max(2, min(wanted, n))
        probs = np.linspace(0.0, 1.0, m)
        q = np.quantile(X, probs, axis=0).T  # (d, m)
        self.quantiles_ = np.maximum.accumulate(q, axis=1)  # guard float round-off
        # Plotting positions: the grid ends at 1/(2n) and 1 - 1/(2n), not 0 and 1, so the
        # training minimum maps to Phi^-1(1/2n) (-2.9 for 300 rows) instead of a lone point
        # far out at -5.2 that the network would have to learn for one row.
        p_min = max(0.5 / n, 1e-7)
        self.targets_ = p_min + (1.0 - 2.0 * p_min) * probs
        self.n_rows_ = n
        return self

    @property
    def z_max_(self) -> float:
        """Largest |z| that ``transform`` produces; useful to clip generated values."""
        return float(ndtri(self.targets_[-1]))

    # -- mapping ---------------------------------------------------------------------------

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Original units -> standard normal scores, float64 ``(n, d)``."""
        X = _check_2d(X, self.quantiles_.shape[0])
        Z = np.empty_like(X)
        t = self.targets_
        for j, q in enumerate(self.quantiles_):
            # Average of the left and right interpolations: a tied value (a flat stretch of
            # q) lands in the middle of its probability mass, as in sklearn.
            up = np.interp(X[:, j], q, t)
            down = -np.interp(-X[:, j], -q[::-1], -t[::-1])
            Z[:, j] = ndtri(0.5 * (up + down))
        return Z

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Normal scores -> original units, with every value valid for its kind."""
        Z = _check_2d(Z, self.quantiles_.shape[0])
        X = np.empty_like(Z)
        for j, (q, (name, lo, hi)) in enumerate(zip(self.quantiles_, self.kinds_, strict=True)):
            col = np.interp(ndtr(Z[:, j]), self.targets_, q)
            if name == "integer":
                col = np.rint(col)
            elif name == "binary":
                col = (col >= 0.5).astype(np.float64)
            X[:, j] = np.clip(col, lo, hi)
        return X

    # -- checkpoint state ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain Python values only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "kinds": [list(k) for k in self.kinds_],
            "n_quantiles": self.n_quantiles,
            "n_rows": int(self.n_rows_),
            "quantiles": torch.from_numpy(self.quantiles_.copy()),
            "targets": torch.from_numpy(self.targets_.copy()),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> QuantileGaussian:
        """Rebuild a fitted transform from ``state_dict()``."""
        kinds = [(str(k[0]), float(k[1]), float(k[2])) for k in state["kinds"]]
        spec = [k if k[0] == "bounded" else k[0] for k in kinds]
        self = cls(spec, n_quantiles=state["n_quantiles"])
        self.kinds_ = kinds
        self.n_rows_ = int(state["n_rows"])
        self.quantiles_ = state["quantiles"].numpy().astype(np.float64)
        self.targets_ = state["targets"].numpy().astype(np.float64)
        return self


def _check_2d(X: np.ndarray, d: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D array, got shape {X.shape}")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"expected {d} columns, got {X.shape[1]}")
    if not np.isfinite(X).all():
        raise ValueError("array has NaN or infinite values")
    return X
