"""Does augmentation help? The augmentation study: every rebalancing variant, every window.

The protocol is the Fraud-Detection Handbook's (:mod:`~.evaluation_windows`): train on a
window, skip the label delay, test on the following days; several windows one after another.
In every window the same XGBoost classifier (the production training code,
:meth:`~.batch.XGBoostModel.train`, with ``config.xgb``) is trained on the same training rows
with one of these variants:

``none``             no rebalancing.
``class_weight``     ``scale_pos_weight = n_legit / n_fraud``.
``smote``            imbalanced-learn's SMOTE up to balanced classes, on standardised columns.
``diffusion_x{r}``   ``r`` x (training frauds) synthetic frauds from a ``TabularDiffusion``
                     fitted on the window's training frauds (all ratios share one model).

and scored on the test window with :func:`~.ranking.score_metrics` (ROC AUC, average
precision, card precision@k per day, precision/recall at the review threshold and at a fixed
daily alert budget); :mod:`~.evaluation_stats` gives mean and standard deviation across
windows (and across seeds). Each window also gets a quality report of its synthetic frauds
(C2ST, DCR, fidelity; ``models/quality.py``): a share ``quality_holdout`` of the training
frauds is kept away from the diffusion fit so that there are real frauds it never saw to
compare with (they still train the classifiers).

Pure: a DataFrame in, a JSON-able dict out; :func:`~.evaluation_report.write_report` turns it
into Markdown and PNG plots.

Example:
    >>> from fraudstream.stream.simulator import SimulationConfig, simulate
    >>> from fraudstream.models.features import compute_features
    >>> from fraudstream.models.evaluation_report import format_table
    >>> df = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=17))
    >>> config = EvaluationConfig(n_windows=1, burn_in_days=1, train_days=7, delay_days=2,
    ...                           test_days=7, diffusion_steps=50)
    >>> features = compute_features(df, 2 * 86400)
    >>> result = evaluate_augmentation(df, features, config)  # doctest: +SKIP
    >>> print(format_table(result))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from imblearn.over_sampling import SMOTE
from sklearn.metrics import precision_recall_curve

from .augmentation import augment, default_steps, feature_kinds, synthesize_frauds
from .batch import XGBoostModel, XGBParams
from .days import DAY_S, day_index, utc_date, utc_iso
from .diffusion import device_name, resolve_device
from .evaluation_stats import mean_std, summarize, summarize_quality
from .evaluation_windows import WindowProtocol, protocol_windows, split_window
from .formats import jsonable
from .quality import gates, holdout_split, quality_report
from .ranking import METRICS, average_precision, card_precision_at_k, score_metrics

__all__ = ["EvaluationConfig", "evaluate_augmentation", "training_set", "variant_names"]

Progress = Callable[[str], None]


def variant_names(ratios: Sequence[float]) -> list[str]:
    """``none``, ``class_weight``, ``smote`` and one ``diffusion_x{r}`` per ratio.

    >>> variant_names([1, 5, 0.5])
    ['none', 'class_weight', 'smote', 'diffusion_x1', 'diffusion_x5', 'diffusion_x0.5']
    """
    return ["none", "class_weight", "smote"] + [f"diffusion_x{float(r):g}" for r in ratios]


_DIFFUSION_VARIANT = re.compile(r"^diffusion_x(.+)$")


@dataclass(frozen=True)
class EvaluationConfig(WindowProtocol):
    """Every setting of :func:`evaluate_augmentation`; stored in its result.

    Protocol: ``n_windows`` windows of ``train_days`` / ``delay_days`` / ``test_days`` after
    ``burn_in_days`` of history. Metrics: ``threshold`` (review threshold), ``top_k_cards``
    (card precision@k), ``alert_budget`` (alerts per day, or a share of the day's
    transactions when below 1). Classifier: ``xgb``, the production classifier's settings
    (its ``n_jobs`` threads also run the quality report). Diffusion: ``diffusion_*``
    settings (``None``: ``TabularDiffusion``'s defaults) and ``extra_diffusion_params``, on
    ``device``; ``ratios`` are the synthetic:real fraud ratios; ``quality_holdout`` is the
    share of training frauds kept from the diffusion fit for its quality report. ``seed``
    seeds the splits, SMOTE and the diffusion models (``xgb.seed`` the trees);
    ``plot_samples`` caps the synthetic rows kept for the report's plots.
    """

    ratios: tuple[float, ...] = (1.0, 5.0)
    threshold: float = 0.5
    top_k_cards: int = 100
    alert_budget: float = 100
    xgb: XGBParams = field(default_factory=XGBParams)
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



def training_set(
    variant: str, X: np.ndarray, y: np.ndarray, synth: np.ndarray, n_real_frauds: int,
    xgb: XGBParams, seed: int,
) -> tuple[np.ndarray, np.ndarray, XGBParams, int]:
    """``(X_fit, y_fit, classifier params, synthetic rows added)`` of one variant.

    ``synth`` holds at least ``max(ratios) x n_real_frauds`` synthetic frauds; a
    ``diffusion_x{r}`` variant takes the first ``r x n_real_frauds`` of them.
    """
    if variant == "none":
        return X, y, xgb, 0
    if variant == "class_weight":
        n_pos = int(y.sum())
        return X, y, replace(xgb, scale_pos_weight=(len(y) - n_pos) / max(n_pos, 1)), 0
    if variant == "smote":
        # SMOTE interpolates between neighbours: without scaling, amounts and counts would
        # decide who is a neighbour and the ratios would not count.
        mu, sd = X.mean(axis=0), X.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        k = min(5, int(y.sum()) - 1)
        Xs, ys = SMOTE(k_neighbors=k, random_state=seed).fit_resample((X - mu) / sd, y)
        return Xs * sd + mu, np.asarray(ys), xgb, len(ys) - len(y)
    match = _DIFFUSION_VARIANT.match(variant)
    if match:
        n = int(round(float(match.group(1)) * n_real_frauds))
        X_aug, y_aug, _ = augment(X, y, synth[:n])
        return X_aug, y_aug, xgb, n
    raise ValueError(f"unknown variant {variant!r}")


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
    ``none``), ``quality_summary``, ``performance``, and what
    :func:`~.evaluation_report.write_report` plots (``curves``: pooled precision-recall
    curves, ``samples``: real and synthetic frauds of the last window).
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

    device = resolve_device(config.device)
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
        test_day = day_index(ts[test_idx], w.test_start)
        frauds = X_train[y_train == 1]
        # Diffusion: one model per window, fitted on the frauds outside the quality holdout.
        holdout, fit_rows = holdout_split(frauds, config.quality_holdout, seed)
        if len(fit_rows) < 10 or not y_test.any():
            raise ValueError(
                f"window {w.index}: {len(frauds)} training frauds and {int(y_test.sum())} test "
                "frauds; too few to evaluate (simulate more customers or days)"
            )
        say(
            f"window {w.index + 1}/{len(windows)}: train {utc_date(w.train_start)}.."
            f"{utc_date(w.train_end)} ({len(train_idx):,} tx, {len(frauds):,} frauds), "
            f"test {utc_date(w.test_start)}..{utc_date(w.test_end)} "
            f"({len(test_idx):,} tx, {int(y_test.sum()):,} frauds)"
        )

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
        quality = quality_report(fit_rows, synth, holdout, names, seed=seed,
                                 n_jobs=config.xgb.n_jobs)
        quality["gates_passed"], quality["gates_reasons"] = gates(quality)

        results: dict[str, dict[str, Any]] = {}
        for variant in variants:
            t1 = time.perf_counter()
            X_fit, y_fit, params, n_added = training_set(
                variant, X_train, y_train, synth, len(frauds), config.xgb, seed
            )
            score = XGBoostModel.train(X_fit, y_fit, names, params).predict_proba(X[test_idx])
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
        "config": jsonable(asdict(config)),
        "data": {
            "n_transactions": len(transactions),
            "n_frauds": int(y.sum()),
            "fraud_rate": float(y.mean()),
            "first_ts_utc": utc_iso(float(ts.min())),
            "last_ts_utc": utc_iso(float(ts.max())),
            "days": float((ts.max() - start_ts) / DAY_S),
            "feature_names": names,
        },
        "windows": [w.to_dict() for w in windows],
        "variants": variants,
        "metrics": METRICS,
        "per_window": per_window,
        "summary": summarize(per_window, variants),
        "quality_summary": summarize_quality(per_window),
        "performance": _performance(per_window, device),
        "curves": _pooled_curves(pooled),
        "samples": samples,
        "wall_seconds": time.perf_counter() - t_start,
    }
    return jsonable(result)


def _performance(per_window: Sequence[Mapping[str, Any]], device: torch.device) -> dict[str, Any]:
    perf: dict[str, Any] = {
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "fit_seconds": mean_std([w["diffusion"]["fit_seconds"] for w in per_window]),
        "fit_steps": per_window[0]["diffusion"]["fit_steps"],
        "samples_per_second": mean_std([w["diffusion"]["samples_per_second"] for w in per_window]),
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
        out["pooled_ap"][variant] = average_precision(y, s)
    return out

