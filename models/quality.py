"""How good are synthetic rows? Fidelity, detectability and privacy, each one number.

``quality_report(real_train, synthetic, real_holdout)`` compares synthetic rows with the real
rows the generator was fitted on (``real_train``) and with real rows it never saw
(``real_holdout``, the yardstick for "as close as a new real row would be"). Every key of
the report and its meaning is in ``REPORT_FIELDS``; ``gates`` turns a report into a
pass/fail decision with reasons a person can read.

All distances are computed on columns standardised by ``real_train``'s mean and standard
deviation, so features in different units weigh the same.

Example:
    >>> rng = np.random.default_rng(0)
    >>> real, fake = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 3
    >>> c2st_auc(real, fake, seed=0) > 0.95
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import NearestNeighbors
from xgboost import XGBClassifier

__all__ = ["REPORT_FIELDS", "c2st_auc", "column_scale", "dcr", "fidelity", "gates", "holdout_split",
           "quality_report"]

REPORT_FIELDS: dict[str, str] = {
    "n_train": "rows of real_train",
    "n_synthetic": "rows of synthetic",
    "n_holdout": "rows of real_holdout",
    # fidelity
    "wasserstein_mean": "mean over features of the 1-Wasserstein distance between real_train "
    "and synthetic marginals, in real_train standard deviations; 0 is ideal",
    "wasserstein": "per feature: the same distance",
    "ks_mean": "mean over features of the Kolmogorov-Smirnov statistic (largest gap between "
    "the two empirical CDFs, in [0, 1]); 0 is ideal",
    "ks": "per feature: the same statistic",
    "corr_distance": "root mean square difference between the Pearson correlations of "
    "real_train and synthetic over all feature pairs (||C_real - C_syn||_F / sqrt(d(d-1)), "
    "in correlation units, in [0, 2]); 0 is ideal, 0.0 with fewer than two features",
    # detectability
    "c2st_auc": "classifier two-sample test: 5-fold cross-validated ROC AUC of XGBoost "
    "trees telling real_holdout rows (real rows the generator never saw) from synthetic rows, "
    "classes balanced; 0.5 means indistinguishable, 1.0 means always told apart",
    "c2st_auc_std": "standard deviation of c2st_auc over the folds",
    "c2st_train_auc": "the same test against real_train; clearly below c2st_reference_auc "
    "means synthetic rows follow the training rows more closely than new real rows do "
    "(overfitting), which is why c2st_auc uses the holdout",
    "c2st_reference_auc": "the same test between real_train and real_holdout: what two real "
    "samples score, the floor to judge c2st_auc against",
    # privacy
    "dcr_threshold": "5th percentile of the distance from each real_holdout row to its "
    "closest real_train row (DCR)",
    "dcr_share": "share of synthetic rows whose DCR to real_train is <= dcr_threshold; "
    "about 0.05 means synthetic rows are no closer to training rows than new real rows "
    "are, values well above it mean memorised (copied or near-copied) training rows",
    "dcr_reference_share": "share of real_holdout rows with DCR <= dcr_threshold: 0.05 "
    "unless distances tie, the value dcr_share should match",
    "dcr_median_ratio": "median synthetic DCR / median holdout DCR; about 1 is ideal, well "
    "below 1 means memorisation, well above 1 means synthetic rows stray from the data",
}


def quality_report(
    real_train: np.ndarray,
    synthetic: np.ndarray,
    real_holdout: np.ndarray,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
    *,
    max_rows: int = 5000,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Fidelity, detectability (C2ST) and privacy (DCR) of ``synthetic`` against real rows.

    ``max_rows`` caps each sample (drawn at random with ``seed``) to bound the run time;
    ``n_jobs`` is the classifier's thread count.
    Keys and meanings are in ``REPORT_FIELDS``; per-feature values are dicts keyed by name.
    """
    real_train, synthetic, real_holdout = _check(real_train, synthetic, real_holdout)
    d = real_train.shape[1]
    names = [f"x{j}" for j in range(d)] if feature_names is None else list(feature_names)
    if len(names) != d:
        raise ValueError(f"{len(names)} feature names for {d} columns")
    rng = np.random.default_rng(seed)
    train = _subsample(real_train, max_rows, rng)
    syn = _subsample(synthetic, max_rows, rng)
    hold = _subsample(real_holdout, max_rows, rng)

    report: dict[str, Any] = {
        "n_train": len(real_train),
        "n_synthetic": len(synthetic),
        "n_holdout": len(real_holdout),
    }
    report.update(fidelity(train, syn, names))
    # Detectability is judged against unseen real rows: against real_train a generator that
    # overfits its training rows scores *better* than 0.5, rewarding exactly the wrong thing.
    report["c2st_auc"], report["c2st_auc_std"] = _c2st(hold, syn, seed, n_jobs=n_jobs)
    report["c2st_train_auc"] = _c2st(train, syn, seed, n_jobs=n_jobs)[0]
    report["c2st_reference_auc"] = _c2st(train, hold, seed, n_jobs=n_jobs)[0]
    report.update(dcr(train, syn, hold))
    return report


def fidelity(
    real: np.ndarray, synthetic: np.ndarray, feature_names: Sequence[str]
) -> dict[str, Any]:
    """Marginal distances (Wasserstein, KS) and correlation distance; see ``REPORT_FIELDS``."""
    real, synthetic = _check(real, synthetic)
    mu, sd = column_scale(real)
    r, s = (real - mu) / sd, (synthetic - mu) / sd
    w = {n: float(wasserstein_distance(r[:, j], s[:, j])) for j, n in enumerate(feature_names)}
    # Only the statistic is used; "asymp" skips the exact p-value (slow, warns on ties).
    ks = {
        n: float(ks_2samp(r[:, j], s[:, j], method="asymp").statistic)
        for j, n in enumerate(feature_names)
    }
    d = real.shape[1]
    if d < 2:
        corr = 0.0
    else:
        diff = _corr(r) - _corr(s)
        corr = float(np.linalg.norm(diff) / np.sqrt(d * (d - 1)))  # diagonal diff is 0
    return {
        "wasserstein_mean": float(np.mean(list(w.values()))),
        "wasserstein": w,
        "ks_mean": float(np.mean(list(ks.values()))),
        "ks": ks,
        "corr_distance": corr,
    }


def c2st_auc(
    a: np.ndarray, b: np.ndarray, seed: int = 0, n_splits: int = 5, n_jobs: int = 1
) -> float:
    """Cross-validated ROC AUC of a classifier telling rows of ``a`` from rows of ``b``.

    0.5: the classifier cannot tell them apart; 1.0: it always can. The larger sample is
    subsampled to the size of the smaller so the classes are balanced.
    """
    a, b = _check(a, b)
    return _c2st(a, b, seed, n_splits, n_jobs)[0]


def dcr(
    real_train: np.ndarray, synthetic: np.ndarray, real_holdout: np.ndarray
) -> dict[str, float]:
    """Distance-to-closest-record privacy numbers; see ``REPORT_FIELDS``."""
    real_train, synthetic, real_holdout = _check(real_train, synthetic, real_holdout)
    mu, sd = column_scale(real_train)
    nn = NearestNeighbors(n_neighbors=1).fit((real_train - mu) / sd)
    d_syn = nn.kneighbors((synthetic - mu) / sd)[0][:, 0]
    d_hold = nn.kneighbors((real_holdout - mu) / sd)[0][:, 0]
    threshold = float(np.percentile(d_hold, 5))
    med_hold = float(np.median(d_hold))
    return {
        "dcr_threshold": threshold,
        # <= so exact copies count even when the threshold is 0 (many tied real rows)
        "dcr_share": float(np.mean(d_syn <= threshold)),
        "dcr_reference_share": float(np.mean(d_hold <= threshold)),
        "dcr_median_ratio": float(np.median(d_syn) / med_hold) if med_hold > 0 else float("inf"),
    }


def gates(
    report: dict[str, Any], max_c2st_auc: float = 0.75, max_dcr_share: float = 0.10
) -> tuple[bool, list[str]]:
    """Pass/fail for a ``quality_report``: ``(ok, reasons it failed)``.

    Fails when a classifier tells synthetic from real too well (``c2st_auc``) or when too
    many synthetic rows sit closer to a training row than new real rows do (``dcr_share``).
    A NaN metric fails: an unmeasured sample is not a good one.
    """
    reasons: list[str] = []
    auc, share = report["c2st_auc"], report["dcr_share"]
    if not auc <= max_c2st_auc:
        reasons.append(
            f"c2st_auc {auc:.3f} > {max_c2st_auc}: a classifier tells synthetic rows from real "
            f"ones (two real samples score {report.get('c2st_reference_auc', float('nan')):.3f})"
        )
    if not share <= max_dcr_share:
        reasons.append(
            f"dcr_share {share:.3f} > {max_dcr_share}: synthetic rows sit closer to training "
            f"rows than held-out real rows do (expected ~0.05): memorisation"
        )
    return not reasons, reasons


def holdout_split(
    frauds: np.ndarray, share: float, seed: int, minimum: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """``(real_holdout, fit_rows)``: a random ``share`` of ``frauds`` (at least ``minimum``
    rows) kept away from the generator's fit, to judge its synthetic rows against.

    >>> holdout, fit = holdout_split(np.arange(40.0).reshape(20, 2), 0.2, seed=0)
    >>> len(holdout), len(fit)
    (5, 15)
    """
    order = np.random.default_rng(seed).permutation(len(frauds))
    n = max(minimum, int(round(share * len(frauds))))
    return frauds[order[:n]], frauds[order[n:]]


# -- helpers -------------------------------------------------------------------------------


def _c2st(
    a: np.ndarray, b: np.ndarray, seed: int, n_splits: int = 5, n_jobs: int = 1
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    if m < n_splits:
        raise ValueError(f"C2ST needs at least {n_splits} rows per sample, got {m}")
    a, b = _subsample(a, m, rng), _subsample(b, m, rng)
    X = np.vstack([a, b])
    y = np.r_[np.zeros(m), np.ones(m)]
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    aucs = []
    for train_idx, test_idx in folds.split(X, y):
        # Small, fixed trees: the test asks "is there any signal", not "fit the best model".
        # One thread by default: these fits take tens of milliseconds, and OpenMP thread
        # teams stall badly on a busy shared machine.
        clf = XGBClassifier(
            n_estimators=100, max_depth=4, learning_rate=0.1, tree_method="hist",
            n_jobs=n_jobs, random_state=seed,
        )  # fmt: skip
        clf.fit(X[train_idx], y[train_idx])
        aucs.append(roc_auc_score(y[test_idx], clf.predict_proba(X[test_idx])[:, 1]))
    return float(np.mean(aucs)), float(np.std(aucs))


def _subsample(X: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    return X if len(X) <= m else X[rng.choice(len(X), m, replace=False)]


def column_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation, to standardise rows by ``X``'s columns."""
    sd = X.std(axis=0)
    return X.mean(axis=0), np.where(sd > 0, sd, 1.0)  # constant columns stay unscaled


def _corr(X: np.ndarray) -> np.ndarray:
    # A constant column has no correlation; count it as 0 rather than NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(X, rowvar=False)
    return np.nan_to_num(c, nan=0.0)


def _check(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    d = out[0].shape[1] if out[0].ndim == 2 else None
    for a in out:
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] != d:
            raise ValueError(f"expected non-empty 2-D arrays with the same columns, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("array has NaN or infinite values")
    return out
