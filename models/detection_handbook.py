"""The batch model under the Fraud-Detection Handbook's protocol, its XGBoost tuned by validation.

The handbook (Le Borgne et al., chapters "Validation strategies" and "Model selection")
measures a classifier on windows of one week of training, one week of label delay and one
week of test, with the test transactions of cards already known to be compromised removed
(models/evaluation_windows.py: :func:`~.evaluation_windows.split_window`). Its tuned XGBoost
reaches an AP of 0.687 that way. This module measures the production batch model
(:meth:`~.batch.XGBoostModel.train`) the same way, so that the two numbers compare:

* :func:`handbook_windows`: the latest ``n_windows`` consecutive test weeks that the stream
  holds (they end with its last whole day), each with its **validation window**: the same
  window shifted back by delay + test, as the handbook's hold-out validation does. The
  validation test week is then the test window's training week: it lies before the test
  period and all its labels have arrived when the test period starts.
* :func:`evaluate_handbook`: per window, XGBoost's ``max_depth`` / ``n_estimators`` /
  ``learning_rate`` are chosen from :class:`XGBGrid` by AP on the validation window (never
  on the test week), refitted on the training week and scored on the test week; the
  trainer's own settings are measured beside it, and every grid point's test AP is kept as
  the ceiling tuning could reach. Means over windows come with a t interval.

Pure: arrays in, a JSON-able dict out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from .batch import XGBoostModel, XGBParams
from .days import DAY_S, day_index
from .evaluation_stats import t_interval
from .evaluation_windows import Window, WindowProtocol, protocol_windows, split_window
from .formats import fmt_number, jsonable
from .ranking import average_precision, card_precision_at_k

__all__ = ["HANDBOOK_PROTOCOL", "XGBGrid", "evaluate_handbook", "grid_scores", "handbook_windows",
           "window_metrics"]

HANDBOOK_PROTOCOL = WindowProtocol(n_windows=4, train_days=7, delay_days=7, test_days=7,
                                   burn_in_days=7, exclude_known_cards=True)
"""The handbook's 7 / 7 / 7 days, known cards excluded; up to 4 windows after a 7-day burn-in
(the time split's), the first validation window's training included."""


@dataclass(frozen=True)
class XGBGrid:
    """The hyper-parameters tried on each validation window (the handbook's grid)."""

    max_depth: tuple[int, ...] = (3, 6, 9)
    n_estimators: tuple[int, ...] = (25, 50, 100)
    learning_rate: tuple[float, ...] = (0.1, 0.3)

    def __post_init__(self) -> None:
        values = (*self.max_depth, *self.n_estimators, *self.learning_rate)
        if not (self.max_depth and self.n_estimators and self.learning_rate) or min(values) <= 0:
            raise ValueError("every grid axis needs at least one value, all > 0")


def window_metrics(y: np.ndarray, s: np.ndarray, day: np.ndarray, card: np.ndarray, k: int
                   ) -> dict[str, float | None]:
    """AP, ROC AUC, card precision@k (mean over days) and the base rate of one scored set;
    the ranking metrics are None when it holds a single class."""
    if not y.any() or y.all():
        return {"average_precision": None, "roc_auc": None, "card_precision_at_k": None,
                "base_rate": float(y.mean()) if len(y) else None}
    cp, _ = card_precision_at_k(day, card, y, s, k=k)
    return {"average_precision": average_precision(y, s),
            "roc_auc": float(roc_auc_score(y, s)),
            "card_precision_at_k": float(cp), "base_rate": float(y.mean())}


def handbook_windows(start: float, end: float, protocol: WindowProtocol = HANDBOOK_PROTOCOL
                     ) -> list[tuple[Window, Window]]:
    """``(validation, test)`` window pairs: the latest ``protocol.n_windows`` (fewer when the
    stream is shorter) whose last test week ends at ``end``, in time order.

    Each validation window is its test window shifted back by ``delay_days + test_days``; the
    earliest validation training starts ``burn_in_days`` or more after ``start``. Raises
    ``ValueError`` when not even one pair fits.

    >>> [(v.test_start / DAY_S, t.test_start / DAY_S) for v, t in handbook_windows(0, 50 * DAY_S)]
    [(22.0, 36.0), (29.0, 43.0)]
    """
    p = protocol
    shift = p.delay_days + p.test_days
    span = (end - start) / DAY_S
    fit = math.floor((span - p.burn_in_days - shift - p.train_days - p.delay_days) / p.test_days
                     + 1e-9)
    n = min(p.n_windows, fit)
    if n < 1:
        raise ValueError(f"the stream is too short for the handbook's windows: {span:g} days, "
                         f"{p.burn_in_days + shift + p.train_days + p.delay_days + p.test_days:g}"
                         " needed for one")
    first = end - (p.train_days + p.delay_days + n * p.test_days) * DAY_S
    kwargs = dict(train_days=p.train_days, delay_days=p.delay_days, test_days=p.test_days)
    tests = protocol_windows(first, n, **kwargs)
    validations = protocol_windows(first - shift * DAY_S, n, **kwargs)
    return list(zip(validations, tests))


def grid_scores(X_fit: np.ndarray, y_fit: np.ndarray, X_eval: np.ndarray, names: Sequence[str],
                grid: XGBGrid, base: XGBParams) -> list[tuple[XGBParams, np.ndarray]]:
    """Scores of ``X_eval`` by each grid point's model fitted on ``(X_fit, y_fit)``, in the
    order ``max_depth``, ``learning_rate``, ``n_estimators`` (each ascending).

    ``base`` gives the other settings (threads, seed, class weight). One fit of the most rounds
    per (depth, rate); fewer rounds are its first trees (boosting without subsampling is
    sequential and deterministic, so they are the shorter fit's trees).
    """
    out = []
    rounds = sorted(set(grid.n_estimators))
    X_eval = np.asarray(X_eval, dtype=np.float64)
    for depth, rate in itertools.product(sorted(set(grid.max_depth)),
                                         sorted(set(grid.learning_rate))):
        params = replace(base, max_depth=depth, learning_rate=rate, n_estimators=rounds[-1])
        model = XGBoostModel.train(X_fit, y_fit, names, params)
        for n in rounds:
            s = (model.booster.inplace_predict(X_eval, iteration_range=(0, n)) if len(X_eval)
                 else np.zeros(0))
            out.append((replace(params, n_estimators=n), np.asarray(s, dtype=np.float64)))
    return out


def _chosen(params: XGBParams) -> dict[str, Any]:
    return {"max_depth": params.max_depth, "n_estimators": params.n_estimators,
            "learning_rate": params.learning_rate}


def _ap(y: np.ndarray, s: np.ndarray) -> float | None:
    return average_precision(y, s) if y.any() and not y.all() else None


def _split(ts, card, y, window: Window, protocol: WindowProtocol) -> tuple[np.ndarray, np.ndarray]:
    train, test = split_window(ts, card, y, window, protocol.delay_days,
                               protocol.exclude_known_cards)
    if not 0 < y[train].sum() < len(train):
        raise ValueError(f"window {window.index}: the training week "
                         f"{window.to_dict()['train_start_utc']} holds a single class")
    return train, test


def evaluate_handbook(X: np.ndarray, ts: np.ndarray, y: np.ndarray, card: np.ndarray,
                      names: Sequence[str], pairs: Sequence[tuple[Window, Window]], *,
                      protocol: WindowProtocol = HANDBOOK_PROTOCOL, grid: XGBGrid = XGBGrid(),
                      base: XGBParams = XGBParams(), top_k: int = 100, confidence: float = 0.95,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The batch model on each ``(validation, test)`` pair of :func:`handbook_windows`.

    ``X`` holds the features of every row of the stream (``names`` in order), ``ts`` / ``y``
    / ``card`` their times, labels and cards. ``base`` is the trainer's XGBoost (measured as
    ``defaults``; its threads and seed also serve the grid). Returns ``protocol``, ``grid``,
    ``windows`` (one entry per pair) and ``summary`` (t intervals over windows). Ties on
    validation go to the earlier grid point (shallower, fewer rounds); a validation week
    without a fraud leaves every point's AP None and the first point chosen.
    """
    say = progress or (lambda message: None)
    y = np.asarray(y, dtype=bool)
    windows = []
    for validation, test in pairs:
        v_train, v_test = _split(ts, card, y, validation, protocol)
        train, test_rows = _split(ts, card, y, test, protocol)
        in_period = int(((ts >= test.test_start) & (ts < test.test_end)).sum())
        on_validation = grid_scores(X[v_train], y[v_train], X[v_test], names, grid, base)
        on_test = grid_scores(X[train], y[train], X[test_rows], names, grid, base)
        v_aps = [_ap(y[v_test], s) for _, s in on_validation]
        best = int(np.argmax([-math.inf if a is None else a for a in v_aps]))
        params, scores = on_test[best]
        day, yt, ct = day_index(ts[test_rows], test.test_start), y[test_rows], card[test_rows]
        default_v = XGBoostModel.train(X[v_train], y[v_train], names, base).predict_proba(X[v_test])
        default_t = XGBoostModel.train(X[train], y[train], names, base).predict_proba(X[test_rows])
        entry = {
            "window": test.to_dict(), "validation_window": validation.to_dict(),
            "rows": {"train": len(train), "test": len(test_rows),
                     "test_known_cards_excluded": in_period - len(test_rows),
                     "validation_train": len(v_train), "validation_test": len(v_test)},
            "frauds": {"train": int(y[train].sum()), "test": int(yt.sum()),
                       "validation_test": int(y[v_test].sum())},
            "chosen": _chosen(params), "validation_average_precision": v_aps[best],
            "test": window_metrics(yt, scores, day, ct, top_k),
            "defaults": {"validation_average_precision": _ap(y[v_test], default_v),
                         "test": window_metrics(yt, default_t, day, ct, top_k)},
            "grid": [{**_chosen(p), "validation_average_precision": va,
                      "test_average_precision": _ap(yt, s)}
                     for (p, s), va in zip(on_test, v_aps)],
        }
        windows.append(entry)
        say(f"handbook window {test.index} (test from {entry['window']['test_start_utc'][:10]}): "
            f"chosen {entry['chosen']}, AP {fmt_number(entry['test']['average_precision'])}, "
            f"trainer defaults {fmt_number(entry['defaults']['test']['average_precision'])}")
    return jsonable({
        "protocol": {**asdict(protocol), "n_windows_fitted": len(windows),
                     "validation_shift_days": protocol.delay_days + protocol.test_days},
        "grid": asdict(grid), "defaults": _chosen(base), "confidence": confidence,
        "windows": windows, "summary": _summary(windows, confidence),
    })


def _summary(windows: Sequence[dict[str, Any]], confidence: float) -> dict[str, Any]:
    def over(get: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        return t_interval([get(w) for w in windows], confidence)

    def minus(a: Any, b: Any) -> float | None:
        return None if a is None or b is None else a - b

    out = {m: over(lambda w, m=m: w["test"][m])
           for m in ("average_precision", "roc_auc", "card_precision_at_k")}
    out["defaults"] = {m: over(lambda w, m=m: w["defaults"]["test"][m])
                       for m in ("average_precision", "roc_auc", "card_precision_at_k")}
    out["tuned_minus_defaults_average_precision"] = over(
        lambda w: minus(w["test"]["average_precision"], w["defaults"]["test"]["average_precision"]))
    out["best_grid_point_on_test_average_precision"] = over(  # a ceiling, not a result
        lambda w: max((g["test_average_precision"] for g in w["grid"]
                       if g["test_average_precision"] is not None), default=None))
    out["grid_means"] = [
        {**{k: g[k] for k in ("max_depth", "n_estimators", "learning_rate")},
         **{f"{key}_average_precision": over(lambda w, i=i, key=key:
                                              w["grid"][i][f"{key}_average_precision"])["mean"]
            for key in ("validation", "test")}}
        for i, g in enumerate(windows[0]["grid"])] if windows else []
    return out
