"""The online learner's default model: a logistic regression on log-scaled, binned features.

Why (measured with models/online_eval.py, see models/online.py): the plain
``StandardScaler | LogisticRegression`` is linear in raw amounts and counts, so a heavy tail
(a hub terminal's counts, a card that spends 100x its peers) dominates its scaler and its
SGD steps, and it cannot score a U-shaped risk (card testing: tiny amounts *and* large ones
are risky, ordinary ones are not). Here each feature ``v`` enters twice:

* ``sign(v) * log1p(|v|)``, standardised (running mean and variance): the trend, with tails
  tamed, so a value 1e6 times the usual moves the logit by a bounded amount;
* a one-hot indicator of its bin on that log scale (``resolution`` bins per unit of
  ``log1p``, i.e. edges at ratios of ``e**(1/resolution)``): a per-feature step function the
  model learns freely, so non-monotone effects need no hand-made feature. Indicators are not
  standardised (a constant 1 would scale to 0).

AdaGrad gives each weight its own step size, so the bin weights, each seen only when its bin
occurs, learn as fast as the dense ones. Learning goes through river; scoring does not
(:meth:`BinnedLogistic.terms_one`): one loop over the features gives the logit and each
feature's contribution to it at once, so the reasons shown with a score cost nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from river import base, linear_model, optim, preprocessing

__all__ = ["BinnedLogistic", "signed_log", "sigmoid_many"]


def signed_log(v: float) -> float:
    """``sign(v) * log1p(|v|)``: the identity near 0, logarithmic in both tails.

    >>> signed_log(0.0), round(signed_log(-(math.e - 1)), 12)
    (0.0, -1.0)
    """
    return math.copysign(math.log1p(abs(v)), v)


class BinnedLogistic(base.Classifier):
    """``predict_proba_one`` / ``learn_one`` of a logistic regression on the representation
    described in the module docstring.

    >>> model = BinnedLogistic()
    >>> model.learn_one({"amount": 900.0}, True)
    >>> model.learn_one({"amount": 12.0}, False)
    >>> sorted(model.transform_one({"amount": 900.0}))
    ['amount', 'amount|20']
    """

    def __init__(self, resolution: int = 3, learning_rate: float = 0.05) -> None:
        self.resolution = resolution
        self.learning_rate = learning_rate
        self.scaler = preprocessing.StandardScaler()
        self.logreg = linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate))

    def _logs(self, x: Mapping[str, float]) -> dict[str, float]:
        return {k: signed_log(v) for k, v in x.items()}

    def _with_bins(self, logs: Mapping[str, float]) -> dict[str, float]:
        z = self.scaler.transform_one(logs)
        res = self.resolution
        for k, v in logs.items():
            if math.isfinite(v):  # NaN and infinities get no bin; their trend term decides
                z[f"{k}|{math.floor(v * res)}"] = 1.0
        return z

    def transform_one(self, x: Mapping[str, float]) -> dict[str, float]:
        """The vector the regression sees for ``x`` (scaled trends and bin indicators)."""
        return self._with_bins(self._logs(x))

    def learn_one(self, x: Mapping[str, float], y: bool, w: float = 1.0) -> None:
        logs = self._logs(x)
        self.scaler.learn_one(logs)
        self.logreg.learn_one(self._with_bins(logs), y, w=w)

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[bool, float]:
        p = _sigmoid(self.terms_one(x)[0])
        return {False: 1.0 - p, True: p}

    def terms_one(self, x: Mapping[str, float]) -> tuple[float, dict[str, float]]:
        """``(logit, contributions)``: each feature's additive share of the logit, its trend
        weight times its scaled log value plus the weight of its bin.

        The same arithmetic as river's ``StandardScaler | LogisticRegression`` on
        :meth:`transform_one` (a zero variance scales to 0), in one pass and without
        building the intermediate dicts: about 3x faster. A non-finite value gives a
        non-finite contribution and logit (the scorer then falls back, never approves).
        """
        means, vars_ = self.scaler.means, self.scaler.vars
        weights = self.logreg._weights
        res = self.resolution
        log1p, sqrt, floor = math.log1p, math.sqrt, math.floor
        bin_names = self._bin_names()
        logit = self.logreg.intercept
        out: dict[str, float] = {}
        for k, v in x.items():
            lv = log1p(v) if v >= 0.0 else -log1p(-v)  # signed_log, inlined (NaN: the else)
            var = vars_.get(k, 0.0)
            c = weights.get(k, 0.0) * ((lv - means.get(k, 0.0)) / sqrt(var)) if var else 0.0
            if lv - lv == 0.0:  # finite
                b = floor(lv * res)
                names = bin_names.get(k)
                if names is None:
                    names = bin_names[k] = {}
                name = names.get(b)
                if name is None:  # formatting the name is the costliest step: done once
                    name = names[b] = f"{k}|{b}"
                c += weights.get(name, 0.0)
            else:
                c = math.nan
            out[k] = c
            logit += c
        return logit, out

    def terms_many(self, X: Sequence[Mapping[str, float]]
                   ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """:meth:`terms_one` for a batch: ``(logits, feature names, contributions)``, an
        ``(n,)`` and an ``(n, len(names))`` array.

        When the rows have the same features (a live batch), the same arithmetic in numpy:
        the bins' weights are looked up once per distinct bin and feature in the batch, not
        once per value, so with the reasons a batch of 500 rows with 24 features costs
        ~10 us a row instead of ~45, one of 10 rows ~35 instead of ~48 (the scorer on the
        simulator's features). The sums run in another order than
        :meth:`terms_one`'s, so results agree to ~1e-15, not bit for bit. Otherwise row by
        row, over the union of the rows' features (a feature a row lacks contributes 0).
        Non-numeric values raise, as they do in :meth:`terms_one`.
        """
        terms = self._terms_shared(X)
        if terms is not None:
            return terms
        rows = [self.terms_one(x) for x in X]
        names = list(dict.fromkeys(k for x in X for k in x))
        column = {k: j for j, k in enumerate(names)}
        contrib = np.zeros((len(X), len(names)))
        for i, (_, c) in enumerate(rows):
            for k, v in c.items():
                contrib[i, column[k]] = v
        return np.array([t[0] for t in rows], dtype=np.float64), names, contrib

    def _terms_shared(self, X: Sequence[Mapping[str, float]]
                      ) -> tuple[np.ndarray, list[str], np.ndarray] | None:
        """:meth:`terms_many` vectorised; ``None`` when the rows' features differ."""
        n = len(X)
        if not n:
            return np.zeros(0), [], np.zeros((0, 0))
        names = list(X[0])
        f = len(names)
        # Same length and every name present: the same features (C-speed, unlike a set compare).
        if any(len(x) != f for x in X):
            return None
        get = itemgetter(*names) if f > 1 else (lambda x: (x[names[0]],))
        try:
            rows = [get(x) for x in X]
        except KeyError:
            return None
        raw = np.array(rows)
        # numpy would read "12" as 12.0 and None as NaN where terms_one raises: refuse them too.
        if raw.shape != (n, f) or raw.dtype.kind not in "fiub":
            raise ValueError("feature values must be numbers")
        raw = raw.astype(np.float64)
        means, vars_ = self.scaler.means, self.scaler.vars
        weights = self.logreg._weights
        mean = np.array([means.get(k, 0.0) for k in names])
        var = np.array([vars_.get(k, 0.0) for k in names])
        weight = np.array([weights.get(k, 0.0) for k in names])
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            lv = np.copysign(np.log1p(np.abs(raw)), raw)  # signed_log
            scaled = var != 0.0  # a zero variance scales to 0, as river's scaler does
            std = np.sqrt(np.where(scaled, var, 1.0))
            contrib = np.where(scaled, weight * ((lv - mean) / std), 0.0)
            finite = np.isfinite(lv)
            bins = np.floor(np.where(finite, lv, 0.0) * self.resolution)
        # Every (feature, bin) of the batch as one integer, so one np.unique finds the
        # distinct bins of all features (one call per feature cost ~15 us each, most of a
        # small live batch). |bin| <= 710 * resolution: log1p of the largest double is 709.8.
        half = 710 * abs(self.resolution) + 2
        column = np.broadcast_to(np.arange(f), (n, f))[finite]
        keys = column * (2 * half) + (bins[finite].astype(np.int64) + half)
        distinct, where = np.unique(keys, return_inverse=True)
        bin_names = self._bin_names()
        bin_weight = np.empty(len(distinct))
        for i, key in enumerate(distinct.tolist()):
            j, b = divmod(key, 2 * half)
            b -= half
            cache = bin_names.setdefault(names[j], {})
            name = cache.get(b)
            if name is None:  # formatting the name is the costliest step: done once
                name = cache[b] = f"{names[j]}|{b}"
            bin_weight[i] = weights.get(name, 0.0)
        contrib[finite] += bin_weight[where.reshape(-1)]
        contrib[~finite] = np.nan  # a non-finite value: a non-finite contribution and logit
        return self.logreg.intercept + contrib.sum(axis=1), names, contrib

    def _bin_names(self) -> dict[str, dict[int, str]]:
        # feature -> bin -> its indicator's name; a cache, rebuilt after unpickling.
        names = self.__dict__.get("_names")
        if names is None:
            names = self.__dict__["_names"] = {}
        return names

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_names", None)
        return state


def _sigmoid(z: float) -> float:
    # river's clamp (utils.math.sigmoid), so scores match its predict_proba_one.
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def sigmoid_many(z: np.ndarray) -> np.ndarray:
    """:func:`_sigmoid` of each element (the same clamp; NaN stays NaN)."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-z))
    return np.where(z < -30, 0.0, np.where(z > 30, 1.0, p))
