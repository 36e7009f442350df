"""Does augmentation help? The handbook's validation protocol, rebalancing variants, metrics.

The protocol is the one of the Fraud-Detection Handbook (Le Borgne et al., chapter
"Validation strategies"): a model is trained on a window of ``train_days``, then nothing is
used for ``delay_days`` (the labels of those days are not known yet when the model goes live),
then it is tested on the next ``test_days``. Several such windows are taken one after another,
each shifted by the test length, so the test windows are consecutive and never overlap. As in
the handbook, cards already known to be compromised (a fraud of theirs, at or after the start
of training, whose label has arrived by the test day: ``ts < day - delay``) are removed
from each test day: an investigator has already blocked them.

In every window the same XGBoost classifier is trained on the same training rows with one of
these variants:

``none``             no rebalancing.
``class_weight``     ``scale_pos_weight = n_legit / n_fraud``.
``smote``            imbalanced-learn's SMOTE up to balanced classes, on standardised columns.
``diffusion_x{r}``   ``r`` x (training frauds) synthetic frauds from a ``TabularDiffusion``
                     fitted on the window's training frauds (all ratios share one model).

and scored on the test window with (see :data:`METRICS`) ROC AUC, average precision, card
precision@k per day, and precision/recall at the review threshold and at a fixed daily alert
budget; the summary gives mean and standard deviation across windows. Each window also gets a
quality report of its synthetic frauds (C2ST, DCR, fidelity; ``models/quality.py``): a share
``quality_holdout`` of the training frauds is kept away from the diffusion fit so that there
are real frauds it never saw to compare with (they still train the classifiers).

Pure: a DataFrame in, a JSON-able dict out; :func:`write_report` turns it into Markdown and
PNG plots.

Example:
    >>> from fraudstream.stream.simulator import SimulationConfig, simulate
    >>> from fraudstream.models.features import compute_features
    >>> df = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=17))
    >>> config = EvaluationConfig(n_windows=1, burn_in_days=1, train_days=7, delay_days=2,
    ...                           test_days=7, diffusion_steps=50)
    >>> features = compute_features(df, 2 * 86400)
    >>> result = evaluate_augmentation(df, features, config)  # doctest: +SKIP
    >>> print(format_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from imblearn.over_sampling import SMOTE
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from xgboost import XGBClassifier

from .augmentation import augment, default_steps, feature_kinds, synthesize_frauds
from .quality import gates, quality_report

__all__ = [
    "DAY_S",
    "METRICS",
    "EvaluationConfig",
    "Window",
    "alert_budget_metrics",
    "card_precision_at_k",
    "evaluate_augmentation",
    "format_seeds_table",
    "format_table",
    "protocol_windows",
    "required_days",
    "score_metrics",
    "split_window",
    "summarize",
    "summarize_seeds",
    "variant_names",
    "write_report",
]

DAY_S = 86_400.0
"""Seconds per day; windows and test days are whole multiples of it."""

Progress = Callable[[str], None]

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
"""Metric keys of each variant and window, and what they mean."""

_TABLE_METRICS = list(METRICS)


# -- protocol ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One train / delay / test split, in epoch seconds (half-open intervals)."""

    index: int
    train_start: float
    train_end: float
    test_start: float
    test_end: float

    def to_dict(self) -> dict[str, Any]:
        """Times as epoch seconds and as UTC dates, for reports."""
        out: dict[str, Any] = asdict(self)
        for key in ("train_start", "train_end", "test_start", "test_end"):
            out[key + "_utc"] = _iso(getattr(self, key))
        return out


def protocol_windows(
    start_ts: float,
    n_windows: int,
    *,
    train_days: float = 7,
    delay_days: float = 7,
    test_days: float = 7,
    burn_in_days: float = 0,
) -> list[Window]:
    """The handbook's windows: train, a label-delay gap, test; shifted by the test length.

    The first training window starts ``burn_in_days`` after ``start_ts`` (history for the
    30-day features to fill up).

    >>> [(w.train_start, w.test_start, w.test_end) for w in protocol_windows(
    ...     0.0, 2, train_days=1, delay_days=1, test_days=1)]
    [(0.0, 172800.0, 259200.0), (86400.0, 259200.0, 345600.0)]
    """
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    if not (train_days > 0 and test_days > 0 and delay_days >= 0 and burn_in_days >= 0):
        raise ValueError("train_days and test_days must be > 0, delay and burn-in >= 0")
    windows = []
    for i in range(n_windows):
        train_start = start_ts + (burn_in_days + i * test_days) * DAY_S
        train_end = train_start + train_days * DAY_S
        test_start = train_end + delay_days * DAY_S
        test_end = test_start + test_days * DAY_S
        windows.append(Window(i, train_start, train_end, test_start, test_end))
    return windows


def required_days(
    n_windows: int,
    *,
    train_days: float = 7,
    delay_days: float = 7,
    test_days: float = 7,
    burn_in_days: float = 0,
) -> int:
    """Days of data :func:`protocol_windows` needs, rounded up to whole days.

    >>> required_days(3, burn_in_days=30)
    65
    """
    return math.ceil(burn_in_days + train_days + delay_days + n_windows * test_days)


def split_window(
    ts: np.ndarray,
    card: np.ndarray,
    y: np.ndarray,
    window: Window,
    delay_days: float,
    exclude_known_cards: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` of one window.

    With ``exclude_known_cards`` (the handbook's rule) a test transaction is dropped when its
    card had a fraud with ``ts`` in ``[train_start, test day's midnight - delay)``: that fraud's
    label has arrived, so the card is known and already blocked. Test days are counted from
    ``test_start``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    codes = pd.factorize(pd.Series(np.asarray(card)), use_na_sentinel=False)[0]
    train = (ts >= window.train_start) & (ts < window.train_end)
    test = (ts >= window.test_start) & (ts < window.test_end)
    if exclude_known_cards:
        since = y & (ts >= window.train_start)
        first_fraud = np.full(codes.max() + 1 if len(codes) else 0, np.inf)
        np.minimum.at(first_fraud, codes[since], ts[since])
        day_start = window.test_start + np.floor((ts - window.test_start) / DAY_S) * DAY_S
        known = first_fraud[codes] < day_start - delay_days * DAY_S
        test &= ~known
    return np.flatnonzero(train), np.flatnonzero(test)


# -- metrics -------------------------------------------------------------------------------


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
    """All :data:`METRICS` of one set of test scores (NaN where undefined)."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    both = 0 < y.sum() < len(y)
    flagged = score >= threshold
    budget = alert_budget_metrics(day, y, score, alert_budget)
    return {
        "roc_auc": float(roc_auc_score(y, score)) if both else math.nan,
        "average_precision": float(average_precision_score(y, score)) if both else math.nan,
        "card_precision_at_k": card_precision_at_k(day, card, y, score, top_k_cards)[0],
        "precision_at_threshold": float(y[flagged].mean()) if flagged.any() else math.nan,
        "recall_at_threshold": float(y[flagged].sum() / y.sum()) if y.any() else math.nan,
        "precision_at_budget": budget["precision"],
        "recall_at_budget": budget["recall"],
        "n_alerts_at_threshold": int(flagged.sum()),
        "n_alerts_at_budget": budget["n_alerts"],
    }


# -- variants ------------------------------------------------------------------------------


def variant_names(ratios: Sequence[float]) -> list[str]:
    """``none``, ``class_weight``, ``smote`` and one ``diffusion_x{r}`` per ratio.

    >>> variant_names([1, 5, 0.5])
    ['none', 'class_weight', 'smote', 'diffusion_x1', 'diffusion_x5', 'diffusion_x0.5']
    """
    return ["none", "class_weight", "smote"] + [f"diffusion_x{float(r):g}" for r in ratios]


_DIFFUSION_VARIANT = re.compile(r"^diffusion_x(.+)$")


@dataclass(frozen=True)
class EvaluationConfig:
    """Every setting of :func:`evaluate_augmentation`; stored in its result.

    Protocol: ``n_windows`` windows of ``train_days`` / ``delay_days`` / ``test_days`` after
    ``burn_in_days`` of history. Metrics: ``threshold`` (review threshold), ``top_k_cards``
    (card precision@k), ``alert_budget`` (alerts per day, or a share of the day's
    transactions when below 1). Classifier: XGBoost with ``n_estimators``, ``max_depth``,
    ``learning_rate`` and ``n_jobs`` threads. Diffusion: ``diffusion_*`` settings (``None``:
    ``TabularDiffusion``'s defaults) and ``extra_diffusion_params``, on ``device``;
    ``ratios`` are the synthetic:real fraud ratios; ``quality_holdout`` is the share of
    training frauds kept from the diffusion fit for its quality report. ``seed`` seeds
    everything; ``plot_samples`` caps the synthetic rows kept for the report's plots.
    """

    n_windows: int = 4
    train_days: float = 7
    delay_days: float = 7
    test_days: float = 7
    burn_in_days: float = 30
    exclude_known_cards: bool = True
    ratios: tuple[float, ...] = (1.0, 5.0)
    threshold: float = 0.5
    top_k_cards: int = 100
    alert_budget: float = 100
    n_estimators: int = 300
    max_depth: int = 5
    learning_rate: float = 0.1
    n_jobs: int = 1
    diffusion_hidden: tuple[int, ...] | None = None
    diffusion_steps: int | None = None
    diffusion_sampler: str = "ancestral"
    diffusion_batch_size: int | None = None
    quality_holdout: float = 0.2
    device: str = "auto"
    seed: int = 0
    plot_samples: int = 1000
    extra_diffusion_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ratios or any(not r > 0 for r in self.ratios):
            raise ValueError(f"ratios must be positive and at least one, got {self.ratios}")
        if not 0 < self.quality_holdout < 1:
            raise ValueError(f"quality_holdout must be in (0, 1), got {self.quality_holdout}")

    def days_needed(self) -> int:
        """Days of simulated data the protocol needs."""
        return required_days(
            self.n_windows, train_days=self.train_days, delay_days=self.delay_days,
            test_days=self.test_days, burn_in_days=self.burn_in_days,
        )  # fmt: skip

    def xgb_params(self) -> dict[str, Any]:
        """The classifier's fixed parameters (every variant uses the same)."""
        return {
            "n_estimators": self.n_estimators,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "tree_method": "hist",
            "n_jobs": self.n_jobs,
            "random_state": self.seed,
        }


def _training_set(
    variant: str, X: np.ndarray, y: np.ndarray, synth: np.ndarray, n_real_frauds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], int]:
    """(X_fit, y_fit, extra classifier params, synthetic rows added) of one variant."""
    if variant == "none":
        return X, y, {}, 0
    if variant == "class_weight":
        n_pos = int(y.sum())
        return X, y, {"scale_pos_weight": (len(y) - n_pos) / max(n_pos, 1)}, 0
    if variant == "smote":
        # SMOTE interpolates between neighbours: without scaling, amounts and counts would
        # decide who is a neighbour and the ratios would not count.
        mu, sd = X.mean(axis=0), X.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        k = min(5, int(y.sum()) - 1)
        Xs, ys = SMOTE(k_neighbors=k, random_state=seed).fit_resample((X - mu) / sd, y)
        return Xs * sd + mu, np.asarray(ys), {}, len(ys) - len(y)
    match = _DIFFUSION_VARIANT.match(variant)
    if match:
        n = int(round(float(match.group(1)) * n_real_frauds))
        X_aug, y_aug, _ = augment(X, y, synth[:n])
        return X_aug, y_aug, {}, n
    raise ValueError(f"unknown variant {variant!r}")


# -- the evaluation ------------------------------------------------------------------------


def evaluate_augmentation(
    transactions: pd.DataFrame,
    features: pd.DataFrame,
    config: EvaluationConfig = EvaluationConfig(),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the protocol over every window and variant; return a JSON-able result.

    ``transactions`` needs ``ts``, ``card_id`` and ``is_fraud``; ``features`` is
    ``compute_features(transactions, delay_days * 86400)`` (row-aligned, ``tx_id`` plus
    feature columns). ``progress(message)`` hears about every long step.

    The result holds ``config``, ``data``, ``windows``, ``variants``, ``metrics`` (meanings),
    ``per_window`` (metrics per variant, diffusion quality and performance per window),
    ``summary`` (mean, std and values across windows, and paired differences from
    ``none``), ``quality_summary``, ``performance``, and what :func:`write_report` plots
    (``curves``: pooled precision-recall curves, ``samples``: real and synthetic frauds of
    the last window).
    """
    say = progress or (lambda message: None)
    t_start = time.perf_counter()
    names = [c for c in features.columns if c != "tx_id"]
    if len(features) != len(transactions):
        raise ValueError("features and transactions must be row-aligned")
    X = features[names].to_numpy(dtype=np.float64)
    y = transactions["is_fraud"].to_numpy(dtype=bool)
    ts = transactions["ts"].to_numpy(dtype=np.float64)
    card = transactions["card_id"].to_numpy()
    kinds = feature_kinds(names)
    variants = variant_names(config.ratios)

    start_ts = math.floor(ts.min() / DAY_S) * DAY_S
    windows = protocol_windows(
        start_ts, config.n_windows, train_days=config.train_days, delay_days=config.delay_days,
        test_days=config.test_days, burn_in_days=config.burn_in_days,
    )  # fmt: skip
    if ts.max() < windows[-1].test_end - DAY_S:
        raise ValueError(
            f"the data span {(ts.max() - start_ts) / DAY_S:.1f} days; the protocol needs "
            f"{config.days_needed()} ({config.n_windows} windows)"
        )

    device = _resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    per_window: list[dict[str, Any]] = []
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {v: ([], []) for v in variants}
    samples: dict[str, Any] = {}
    for w in windows:
        seed = config.seed + w.index
        train_idx, test_idx = split_window(
            ts, card, y, w, config.delay_days, config.exclude_known_cards
        )
        X_train, y_train = X[train_idx], y[train_idx].astype(np.int64)
        y_test = y[test_idx]
        test_day = np.floor((ts[test_idx] - w.test_start) / DAY_S).astype(np.int64)
        frauds = X_train[y_train == 1]
        n_hold = max(5, int(round(config.quality_holdout * len(frauds))))
        if len(frauds) - n_hold < 10 or not y_test.any():
            raise ValueError(
                f"window {w.index}: {len(frauds)} training frauds and {int(y_test.sum())} test "
                "frauds; too few to evaluate (simulate more customers or days)"
            )
        say(
            f"window {w.index + 1}/{len(windows)}: train {_iso(w.train_start)[:10]}.."
            f"{_iso(w.train_end)[:10]} ({len(train_idx):,} tx, {len(frauds):,} frauds), "
            f"test {_iso(w.test_start)[:10]}..{_iso(w.test_end)[:10]} "
            f"({len(test_idx):,} tx, {int(y_test.sum()):,} frauds)"
        )

        # Diffusion: one model per window, fitted on the frauds outside the quality holdout.
        order = np.random.default_rng(seed).permutation(len(frauds))
        holdout, fit_rows = frauds[order[:n_hold]], frauds[order[n_hold:]]
        n_synth = int(round(max(config.ratios) * len(frauds)))
        steps = config.diffusion_steps or default_steps(len(fit_rows))
        say(f"  diffusion: fit on {len(fit_rows):,} frauds, {steps} steps on {device}, "
            f"then sample {n_synth:,}")  # fmt: skip
        t0 = time.perf_counter()
        synth, model = synthesize_frauds(
            fit_rows, kinds, n_synth,
            hidden=config.diffusion_hidden, steps=config.diffusion_steps,
            sampler=config.diffusion_sampler, device=str(device), seed=seed,
            batch_size=config.diffusion_batch_size,
            progress=lambda step, total, loss: say(
                f"  diffusion fit step {step}/{total}  loss {loss:.4f}"
            ),
            **dict(config.extra_diffusion_params),
        )  # fmt: skip
        sample_seconds = max(time.perf_counter() - t0 - model.fit_seconds_, 1e-9)
        perf = {
            "fit_seconds": model.fit_seconds_,
            "fit_steps": model.steps_,
            "fit_rows": len(fit_rows),
            "final_loss": model.loss_,
            "n_samples": n_synth,
            "sample_seconds": sample_seconds,
            "samples_per_second": n_synth / sample_seconds,
            "sampler": config.diffusion_sampler,
            "params": {k: v for k, v in model.get_params().items() if k != "feature_kinds"},
        }
        say(f"  diffusion: fit {model.fit_seconds_:.1f}s, sampled {n_synth:,} at "
            f"{perf['samples_per_second']:,.0f}/s; quality report")  # fmt: skip
        quality = quality_report(fit_rows, synth, holdout, names, seed=seed, n_jobs=config.n_jobs)
        quality["gates_passed"], quality["gates_reasons"] = gates(quality)

        results: dict[str, dict[str, Any]] = {}
        for variant in variants:
            t1 = time.perf_counter()
            X_fit, y_fit, extra, n_added = _training_set(
                variant, X_train, y_train, synth, len(frauds), seed
            )
            clf = XGBClassifier(**config.xgb_params(), **extra)
            clf.fit(X_fit, y_fit)
            score = clf.predict_proba(X[test_idx])[:, 1]
            metrics = score_metrics(
                y_test, score, test_day, card[test_idx], threshold=config.threshold,
                top_k_cards=config.top_k_cards, alert_budget=config.alert_budget,
            )  # fmt: skip
            metrics.update(
                n_train=len(y_fit),
                n_train_frauds=int(y_fit.sum()),
                n_synthetic=n_added,
                fit_seconds=time.perf_counter() - t1,
            )
            results[variant] = metrics
            pooled[variant][0].append(y_test)
            pooled[variant][1].append(score)
            say(f"  {variant:<16} AP {metrics['average_precision']:.3f}  "
                f"CP@{config.top_k_cards} {metrics['card_precision_at_k']:.3f}  "
                f"AUC {metrics['roc_auc']:.3f}  ({metrics['fit_seconds']:.1f}s)")  # fmt: skip

        per_window.append({
            "window": w.to_dict(),
            # What a perfect ranking would score: few compromised cards a day cap it below 1.
            "card_precision_at_k_oracle": card_precision_at_k(
                test_day, card[test_idx], y_test, y_test.astype(np.float64), config.top_k_cards
            )[0],
            "n_train": len(train_idx),
            "n_train_frauds": len(frauds),
            "n_test": len(test_idx),
            "n_test_frauds": int(y_test.sum()),
            "n_test_excluded_known_cards": int(
                ((ts >= w.test_start) & (ts < w.test_end)).sum() - len(test_idx)
            ),
            "variants": results,
            "diffusion": perf,
            "quality": quality,
        })  # fmt: skip
        if w.index == windows[-1].index:
            keep = np.random.default_rng(seed).permutation(len(synth))[: config.plot_samples]
            samples = {
                "window": w.index,
                "feature_names": names,
                "feature_kinds": [k if isinstance(k, str) else list(k) for k in kinds],
                "real": fit_rows.tolist(),
                "holdout": holdout.tolist(),
                "synthetic": synth[keep].tolist(),
            }

    result = {
        "config": _jsonable(asdict(config)),
        "data": {
            "n_transactions": len(transactions),
            "n_frauds": int(y.sum()),
            "fraud_rate": float(y.mean()),
            "first_ts_utc": _iso(float(ts.min())),
            "last_ts_utc": _iso(float(ts.max())),
            "days": float((ts.max() - start_ts) / DAY_S),
            "feature_names": names,
        },
        "windows": [w.to_dict() for w in windows],
        "variants": variants,
        "metrics": METRICS,
        "xgb_params": config.xgb_params(),
        "per_window": per_window,
        "summary": summarize(per_window, variants),
        "quality_summary": _quality_summary(per_window),
        "performance": _performance(per_window, device),
        "curves": _pooled_curves(pooled),
        "samples": samples,
        "wall_seconds": time.perf_counter() - t_start,
    }
    return _jsonable(result)


def summarize(per_window: Sequence[Mapping[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    """Mean, standard deviation (ddof=1; 0 for one window) and values of each metric.

    Also ``vs_none``: per variant, the paired difference from ``none`` in the same window
    (mean, std and how many windows it is ahead), for average precision and card
    precision@k, the two numbers that decide whether rebalancing pays.
    """
    out: dict[str, Any] = {}
    for variant in variants:
        out[variant] = {}
        for metric in _TABLE_METRICS:
            values = [w["variants"][variant][metric] for w in per_window]
            out[variant][metric] = _stats(values)
        deltas = {}
        for metric in ("average_precision", "card_precision_at_k"):
            diffs = [
                w["variants"][variant][metric] - w["variants"]["none"][metric] for w in per_window
            ]
            stats = _stats(diffs)
            stats["windows_ahead"] = int(sum(d > 0 for d in diffs))
            deltas[metric] = stats
        out[variant]["vs_none"] = deltas
    return out


def summarize_seeds(results: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """Means across seeds with a t interval, so a single lucky split never decides.

    Each of ``results`` is one :func:`evaluate_augmentation` result of another seed (its own
    simulated data, diffusion fits and classifiers). Per variant and metric, the unit is one
    seed's mean over its windows; ``vs_none`` is the same for the paired difference from
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
        for metric in _TABLE_METRICS:
            row[metric] = _interval([r["summary"][variant][metric]["mean"] for r in results],
                                    confidence)
        row["vs_none"] = {}
        for metric in ("average_precision", "card_precision_at_k"):
            means = [r["summary"][variant]["vs_none"][metric]["mean"] for r in results]
            stats = _interval(means, confidence)
            stats["seeds_ahead"] = int(sum(m is not None and m > 0 for m in means))
            stats["windows_ahead"] = int(sum(r["summary"][variant]["vs_none"][metric]["windows_ahead"]
                                             for r in results))
            row["vs_none"][metric] = stats
        out["summary"][variant] = row
    out["quality"] = {k: _interval([r["quality_summary"][k]["mean"] for r in results], confidence)
                      for k in ("c2st_auc", "dcr_share")}
    out["quality"]["gates_passed_windows"] = int(sum(r["quality_summary"]["gates_passed_windows"]
                                                     for r in results))
    return _jsonable(out)


def _interval(values: Sequence[float | None], confidence: float) -> dict[str, Any]:
    """Mean, standard deviation and t interval of ``values`` (None and NaN left out)."""
    from scipy import stats as scipy_stats

    arr = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    ok = arr[np.isfinite(arr)]
    n = len(ok)
    mean = float(ok.mean()) if n else math.nan
    std = float(ok.std(ddof=1)) if n > 1 else (0.0 if n else math.nan)
    half = (float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
            if n > 1 else math.nan)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n,
            "values": arr.tolist()}


def format_seeds_table(seeds: Mapping[str, Any], markdown: bool = False) -> str:
    """Variants as rows: AP, card precision@k and their difference from ``none``, each as
    ``mean [low, high]`` across seeds."""
    conf = f"{seeds['confidence']:.0%}"
    header = ["variant", f"AP [{conf}]", f"CP@k [{conf}]", f"Δ AP vs none [{conf}]",
              "seeds ahead", f"Δ CP vs none [{conf}]"]
    rows = []
    n = len(seeds["seeds"])
    for v in seeds["variants"]:
        row = seeds["summary"][v]
        d_ap, d_cp = row["vs_none"]["average_precision"], row["vs_none"]["card_precision_at_k"]
        rows.append([v, _ci(row["average_precision"]), _ci(row["card_precision_at_k"]),
                     _ci(d_ap, signed=True), f"{d_ap['seeds_ahead']}/{n}", _ci(d_cp, signed=True)])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _ci(stats: Mapping[str, Any], signed: bool = False) -> str:
    mean, low, high = stats["mean"], stats["low"], stats["high"]
    if mean is None:
        return "n/a"
    sign = "+" if signed else ""
    if low is None or high is None:
        return f"{mean:{sign}.3f}"
    return f"{mean:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def _stats(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    ok = arr[np.isfinite(arr)]
    return {
        "mean": float(ok.mean()) if len(ok) else math.nan,
        "std": float(ok.std(ddof=1)) if len(ok) > 1 else (0.0 if len(ok) else math.nan),
        "values": arr.tolist(),
    }


_QUALITY_KEYS = (
    "c2st_auc", "c2st_reference_auc", "c2st_train_auc", "dcr_share", "dcr_reference_share",
    "dcr_median_ratio", "ks_mean", "wasserstein_mean", "corr_distance",
)  # fmt: skip


def _quality_summary(per_window: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _stats([w["quality"][k] for w in per_window]) for k in _QUALITY_KEYS}
    out["gates_passed_windows"] = int(sum(bool(w["quality"]["gates_passed"]) for w in per_window))
    return out


def _performance(per_window: Sequence[Mapping[str, Any]], device: torch.device) -> dict[str, Any]:
    perf: dict[str, Any] = {
        "device": str(device),
        "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "fit_seconds": _stats([w["diffusion"]["fit_seconds"] for w in per_window]),
        "fit_steps": per_window[0]["diffusion"]["fit_steps"],
        "samples_per_second": _stats([w["diffusion"]["samples_per_second"] for w in per_window]),
        "sampler": per_window[0]["diffusion"]["sampler"],
        "diffusion_params": per_window[0]["diffusion"]["params"],
    }
    if device.type == "cuda":
        perf["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
        perf["peak_memory_kind"] = "torch.cuda.max_memory_allocated over the whole evaluation"
    else:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        perf["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        perf["peak_memory_kind"] = "ru_maxrss: peak resident set of the whole process"
    return perf


def _pooled_curves(
    pooled: Mapping[str, tuple[list[np.ndarray], list[np.ndarray]]], points: int = 201
) -> dict[str, Any]:
    """Precision-recall curves over the test rows of all windows, interpolated.

    Interpolated precision at recall r is the best precision at any recall >= r, sampled on
    ``points`` recall levels: a few kilobytes per variant instead of one point per score.
    """
    grid = np.linspace(0.0, 1.0, points)
    out: dict[str, Any] = {"recall": grid.round(6).tolist(), "precision": {}, "pooled_ap": {}}
    for variant, (ys, scores) in pooled.items():
        y, s = np.concatenate(ys), np.concatenate(scores)
        precision, recall, _ = precision_recall_curve(y, s)
        # recall decreases along the arrays, so rows 0..i are those with recall >= recall[i].
        best = np.maximum.accumulate(precision)
        idx = np.searchsorted(-recall, -grid, side="right") - 1  # last index with recall >= r
        out["precision"][variant] = np.where(idx >= 0, best[np.clip(idx, 0, None)], 0.0).round(
            6
        ).tolist()
        out["pooled_ap"][variant] = float(average_precision_score(y, s))
    return out


# -- tables and the report -----------------------------------------------------------------


def _metric_label(metric: str, config: Mapping[str, Any]) -> str:
    budget = config["alert_budget"]
    per_day = f"{budget:g}/day" if budget >= 1 else f"{budget:.1%}/day"
    return {
        "roc_auc": "ROC AUC",
        "average_precision": "AP",
        "card_precision_at_k": f"CP@{config['top_k_cards']}",
        "precision_at_threshold": f"P@{config['threshold']:g}",
        "recall_at_threshold": f"R@{config['threshold']:g}",
        "precision_at_budget": f"P@{per_day}",
        "recall_at_budget": f"R@{per_day}",
    }[metric]


def _pm(stats: Mapping[str, Any], signed: bool = False) -> str:
    mean, std = stats["mean"], stats["std"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    return f"{mean:{'+' if signed else ''}.3f} ± {std:.3f}"


def format_table(result: Mapping[str, Any], markdown: bool = False) -> str:
    """Variants as rows, metrics as columns, ``mean ± std`` across windows."""
    config = result["config"]
    header = ["variant"] + [_metric_label(m, config) for m in _TABLE_METRICS]
    rows = [
        [v] + [_pm(result["summary"][v][m]) for m in _TABLE_METRICS] for v in result["variants"]
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def write_report(result: Mapping[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and its PNG plots into ``directory``; returns the paths by name.

    Plots: pooled precision-recall curves per variant; AP and card precision@k per variant
    with their spread; real vs synthetic frauds of the last window projected on the first
    two principal components of the real frauds; per-feature marginals, real vs synthetic.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "pr_curves": out / "pr_curves.png",
        "metrics": out / "metrics.png",
        "projection": out / "projection.png",
        "marginals": out / "marginals.png",
        "report": out / "report.md",
    }
    _plot_pr_curves(plt, result, paths["pr_curves"])
    _plot_metrics(plt, result, paths["metrics"])
    samples = result["samples"]
    real = np.asarray(samples["real"], dtype=np.float64)
    holdout = np.asarray(samples["holdout"], dtype=np.float64)
    synth = np.asarray(samples["synthetic"], dtype=np.float64)
    _plot_projection(plt, real, holdout, synth, paths["projection"])
    _plot_marginals(plt, real, synth, samples["feature_names"], paths["marginals"])
    paths["report"].write_text(_markdown(result), encoding="utf-8")
    return paths


def _plot_pr_curves(plt: Any, result: Mapping[str, Any], path: Path) -> None:
    curves = result["curves"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for variant in result["variants"]:
        ax.plot(
            curves["recall"], curves["precision"][variant],
            label=f"{variant} (AP {curves['pooled_ap'][variant]:.3f})",
            linestyle="--" if variant.startswith("diffusion") else "-",
        )  # fmt: skip
    ax.set(xlabel="recall", ylabel="precision (interpolated)", xlim=(0, 1), ylim=(0, 1.02),
           title=f"Precision-recall, test rows of all {len(result['per_window'])} windows pooled")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_metrics(plt: Any, result: Mapping[str, Any], path: Path) -> None:
    variants = result["variants"]
    shown = ("average_precision", "card_precision_at_k", "recall_at_budget")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4))
    for ax, metric in zip(axes, shown):
        stats = [result["summary"][v][metric] for v in variants]
        means = [np.nan if s["mean"] is None else s["mean"] for s in stats]
        stds = [0.0 if s["std"] is None else s["std"] for s in stats]
        ax.bar(range(len(variants)), means, yerr=stds, capsize=3,
               color=["C0" if not v.startswith("diffusion") else "C1" for v in variants])
        for x, s in enumerate(stats):
            vals = [v for v in s["values"] if v is not None]
            ax.plot([x] * len(vals), vals, "k.", markersize=4)
        ax.set_xticks(range(len(variants)), variants, rotation=35, ha="right", fontsize=8)
        ax.set_title(_metric_label(metric, result["config"]) + " (mean ± std, dots: windows)",
                     fontsize=9)  # fmt: skip
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_projection(
    plt: Any, real: np.ndarray, holdout: np.ndarray, synth: np.ndarray, path: Path
) -> None:
    # Standardise by the real frauds (else amounts and counts are the only axes), then PCA.
    mu, sd = real.mean(axis=0), real.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = (real - mu) / sd
    _, s, vt = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    axes = vt[:2].T
    explained = (s[:2] ** 2) / max((s**2).sum(), 1e-12)
    project = lambda A: ((A - mu) / sd - Z.mean(axis=0)) @ axes  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for rows, label, style in (
        (synth, f"synthetic ({len(synth)})", dict(c="C1", marker="x", alpha=0.35, s=12)),
        (real, f"real, diffusion fit set ({len(real)})", dict(c="C0", alpha=0.5, s=12)),
        (holdout, f"real, held out ({len(holdout)})", dict(c="C2", alpha=0.8, s=18)),
    ):
        if len(rows):
            P = project(rows)
            ax.scatter(P[:, 0], P[:, 1], label=label, **style)
    ax.set(xlabel=f"PC1 ({explained[0]:.0%} of real variance)",
           ylabel=f"PC2 ({explained[1] if len(explained) > 1 else 0:.0%})",
           title="Frauds, real vs synthetic: PCA fitted on the real frauds")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_marginals(
    plt: Any, real: np.ndarray, synth: np.ndarray, names: Sequence[str], path: Path
) -> None:
    n_cols = 4
    n_rows = math.ceil(len(names) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.5 * n_rows), squeeze=False)
    for j, name in enumerate(names):
        ax = axes[j // n_cols][j % n_cols]
        both = np.concatenate([real[:, j], synth[:, j]])
        values = np.unique(both)
        if len(values) <= 25 and np.allclose(values, np.round(values)):
            bins = np.arange(values.min() - 0.5, values.max() + 1.5)  # one bar per whole value
        else:
            lo, hi = np.percentile(both, [0.5, 99.5])
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(real[:, j], bins=bins, density=True, alpha=0.5, label="real", color="C0")
        ax.hist(synth[:, j], bins=bins, density=True, histtype="step", lw=1.5,
                label="synthetic", color="C1")  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(names), n_rows * n_cols):
        axes[j // n_cols][j % n_cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Per-feature marginals of frauds, real (fit set) vs synthetic", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _markdown(result: Mapping[str, Any]) -> str:
    config, data, perf = result["config"], result["data"], result["performance"]
    ratios = ", ".join(f"{r:g}" for r in config["ratios"])
    lines = [
        "# Does diffusion augmentation help? Utility evaluation",
        "",
        f"{data['n_transactions']:,} simulated transactions, {data['n_frauds']:,} frauds "
        f"({data['fraud_rate']:.2%}), {data['first_ts_utc']} .. {data['last_ts_utc']}.",
        "",
        "**Protocol** (Fraud-Detection Handbook, *Validation strategies*): train on "
        f"{config['train_days']:g} days, skip {config['delay_days']:g} days (labels not yet "
        f"known), test on the next {config['test_days']:g} days; {len(result['windows'])} "
        f"windows, each shifted by {config['test_days']:g} days, after {config['burn_in_days']:g} "
        "days of history for the features."
        + (" Cards already known to be compromised are removed from each test day."
           if config["exclude_known_cards"] else ""),
        "",
        f"**Classifier**: XGBoost `{result['xgb_params']}`, the same for every variant. "
        "**Variants**: `none` (no rebalancing), `class_weight` (scale_pos_weight = legit/fraud), "
        "`smote` (SMOTE to balanced classes, standardised columns), `diffusion_x{r}` (r x the "
        f"training frauds as synthetic frauds from TabularDiffusion, r in {ratios}; "
        f"{perf['fit_steps']} fit steps, hidden {perf['diffusion_params']['hidden']}, "
        f"{perf['sampler']} sampler).",
        "",
        "| window | train | test | train tx | train frauds | test tx | test frauds "
        f"| CP@{config['top_k_cards']} of a perfect ranking |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in result["per_window"]:
        win = w["window"]
        lines.append(
            f"| {win['index']} | {win['train_start_utc'][:10]} .. {win['train_end_utc'][:10]} "
            f"| {win['test_start_utc'][:10]} .. {win['test_end_utc'][:10]} | {w['n_train']:,} "
            f"| {w['n_train_frauds']:,} | {w['n_test']:,} | {w['n_test_frauds']:,} "
            f"| {_fmt(w['card_precision_at_k_oracle'])} |"
        )
    seeds = result.get("seeds")
    if seeds:
        q = seeds["quality"]
        lines += [
            "",
            f"## Results across {len(seeds['seeds'])} seeds (mean [{seeds['confidence']:.0%} t "
            "interval])",
            "",
            f"Seeds {', '.join(str(s) for s in seeds['seeds'])}: each its own simulated data, "
            f"diffusion fits and classifiers, {seeds['n_windows']} windows in all. The unit is "
            "one seed's mean over its windows; the interval is Student's t across seeds. A "
            "difference from `none` whose interval holds 0 is not a finding.",
            "",
            format_seeds_table(seeds, markdown=True),
            "",
            f"Synthetic frauds across seeds: C2ST AUC {_ci(q['c2st_auc'])}, DCR share "
            f"{_ci(q['dcr_share'])}; quality gates passed in {q['gates_passed_windows']}/"
            f"{seeds['n_windows']} windows.",
            "",
            f"The rest of this report is seed {result['config']['seed']}'s.",
        ]
    lines += [
        "",
        "## Results (mean ± std across windows)",
        "",
        format_table(result, markdown=True),
        "",
        "Judge on AP and card precision@k: rebalancing typically lifts ROC AUC and recall at a "
        "fixed threshold while costing precision (the handbook's warning).",
        "",
        "Paired with `none` in the same window (difference, mean ± std; windows ahead):",
        "",
        "| variant | Δ AP | windows ahead | Δ CP | windows ahead |",
        "|---|---|---|---|---|",
    ]
    n_win = len(result["per_window"])
    for v in result["variants"][1:]:
        d = result["summary"][v]["vs_none"]
        ap, cp = d["average_precision"], d["card_precision_at_k"]
        lines.append(
            f"| {v} | {_pm(ap, signed=True)} | {ap['windows_ahead']}/{n_win} "
            f"| {_pm(cp, signed=True)} | {cp['windows_ahead']}/{n_win} |"
        )
    lines += [
        "",
        "![precision-recall curves](pr_curves.png)",
        "",
        "![metrics per variant](metrics.png)",
        "",
        "## Quality of the synthetic frauds",
        "",
        f"Per window, the diffusion model is fitted on {1 - config['quality_holdout']:.0%} of "
        "the training frauds; the rest are real frauds it never saw. C2ST: AUC of a classifier "
        "telling held-out real frauds from synthetic ones (0.5 ideal; the reference is two "
        "real samples). DCR share: synthetic rows closer to a training fraud than the 5% "
        "closest held-out rows (about 0.05 means no memorisation).",
        "",
        "| window | C2ST AUC | C2ST reference | C2ST vs fit set | DCR share | DCR median ratio "
        "| KS mean | corr distance | gates |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in result["per_window"]:
        q = w["quality"]
        lines.append(
            f"| {w['window']['index']} | {_fmt(q['c2st_auc'])} | {_fmt(q['c2st_reference_auc'])} "
            f"| {_fmt(q['c2st_train_auc'])} | {_fmt(q['dcr_share'])} "
            f"| {_fmt(q['dcr_median_ratio'])} | {_fmt(q['ks_mean'])} "
            f"| {_fmt(q['corr_distance'])} | {'pass' if q['gates_passed'] else 'FAIL'} |"
        )
    qs = result["quality_summary"]
    lines += [
        f"| mean | {_pm(qs['c2st_auc'])} | {_pm(qs['c2st_reference_auc'])} "
        f"| {_pm(qs['c2st_train_auc'])} | {_pm(qs['dcr_share'])} | {_pm(qs['dcr_median_ratio'])} "
        f"| {_pm(qs['ks_mean'])} | {_pm(qs['corr_distance'])} "
        f"| {qs['gates_passed_windows']}/{n_win} |",
        "",
        f"Plots from window {result['samples']['window']}:",
        "",
        "![real vs synthetic frauds, PCA](projection.png)",
        "",
        "![per-feature marginals](marginals.png)",
        "",
        "## Performance",
        "",
        f"- device: {perf['device']} ({perf['device_name']}), torch threads "
        f"{perf['torch_threads']}",
        f"- diffusion fit: {_pm(perf['fit_seconds'])} s per window ({perf['fit_steps']} steps)",
        f"- sampling ({perf['sampler']}): {_pm(perf['samples_per_second'])} samples/s",
        f"- peak memory: {perf['peak_memory_bytes'] / 2**20:,.0f} MiB ({perf['peak_memory_kind']})",
        f"- evaluation wall time: {result['wall_seconds']:.0f} s",
        "",
        "## Metrics",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in result["metrics"].items()]
    return "\n".join(lines) + "\n"


# -- helpers -------------------------------------------------------------------------------


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(obj: Any) -> Any:
    """Plain Python values; NaN and infinities become ``None`` (JSON has no such numbers)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
