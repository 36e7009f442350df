"""Quality report: each metric moves the right way on cases with a known answer."""

import math

import numpy as np
import pytest

from fraudstream.models.quality import (
    REPORT_FIELDS, c2st_auc, dcr, fidelity, gates, holdout_split, quality_report)


def correlated(n: int, seed: int, rho: float = 0.6, d: int = 4) -> np.ndarray:
    """Gaussian rows with pairwise correlation ``rho`` and one skewed column."""
    rng = np.random.default_rng(seed)
    cov = np.full((d, d), rho) + (1 - rho) * np.eye(d)
    X = rng.multivariate_normal(np.zeros(d), cov, size=n)
    X[:, 0] = np.exp(X[:, 0])
    return X


def test_c2st_is_half_for_one_distribution_and_one_for_two():
    a, b = correlated(1000, seed=1), correlated(1000, seed=2)
    assert abs(c2st_auc(a, b, seed=0) - 0.5) < 0.06
    shifted = b + np.array([0.0, 1.5, 0.0, 0.0])
    assert c2st_auc(a, shifted, seed=0) > 0.8
    assert c2st_auc(a, b + 5.0, seed=0) > 0.99


def test_fidelity_zero_for_identical_and_in_units_of_std():
    real = correlated(2000, seed=1)
    f = fidelity(real, real, ["a", "b", "c", "d"])
    assert f["wasserstein_mean"] == 0 and f["ks_mean"] == 0 and f["corr_distance"] == 0
    shifted = real.copy()
    shifted[:, 1] += real[:, 1].std()  # one standard deviation
    f = fidelity(real, shifted, ["a", "b", "c", "d"])
    assert f["wasserstein"]["b"] == pytest.approx(1.0, rel=1e-6) and f["wasserstein"]["a"] == 0
    assert f["ks"]["b"] > 0.3


def test_corr_distance_is_the_rms_correlation_error():
    real = correlated(4000, seed=1, rho=0.8, d=2)
    independent = np.column_stack([real[:, 0], np.random.default_rng(9).permutation(real[:, 1])])
    rho = np.corrcoef(real, rowvar=False)[0, 1]
    # one pair: the distance is the whole lost correlation
    distance = fidelity(real, independent, ["a", "b"])["corr_distance"]
    assert distance == pytest.approx(abs(rho), abs=0.05)


def test_memorised_copy_shows_in_dcr_and_fails_the_gate():
    train, holdout = correlated(1000, seed=1), correlated(1000, seed=2)
    copy = train[np.random.default_rng(3).choice(1000, 800, replace=False)]
    report = quality_report(train, copy, holdout, seed=0)
    assert report["dcr_share"] == 1.0 and report["dcr_median_ratio"] == 0.0
    # Unseen real rows cannot tell a copy from real data; the training rows can, in reverse:
    # each held-out fold row has its twin labelled "synthetic" in the training folds.
    assert abs(report["c2st_auc"] - 0.5) < 0.06 and report["c2st_train_auc"] < 0.3
    ok, reasons = gates(report)
    assert not ok and any("memorisation" in r for r in reasons)


def test_fresh_sample_passes_with_numbers_near_their_ideals():
    train, holdout, fresh = (correlated(1000, seed=s) for s in (1, 2, 3))
    report = quality_report(train, fresh, holdout, ["amount", "b", "c", "d"], seed=0)
    assert set(report) == set(REPORT_FIELDS)
    assert set(report["ks"]) == {"amount", "b", "c", "d"}
    for key, value in report.items():
        values = value.values() if isinstance(value, dict) else [value]
        assert all(isinstance(v, int | float) and math.isfinite(v) for v in values), key
    assert report["dcr_share"] < 0.10 and 0.8 < report["dcr_median_ratio"] < 1.25
    assert report["dcr_reference_share"] == pytest.approx(0.05, abs=0.002)
    assert abs(report["c2st_auc"] - 0.5) < 0.06 and abs(report["c2st_reference_auc"] - 0.5) < 0.06
    assert report["ks_mean"] < 0.1 and report["corr_distance"] < 0.05
    assert gates(report) == (True, [])


def test_distinguishable_sample_fails_the_c2st_gate():
    train, holdout = correlated(600, seed=1), correlated(600, seed=2)
    report = quality_report(train, correlated(600, seed=3, rho=0.0), holdout, seed=0)
    ok, reasons = gates(report, max_c2st_auc=0.6)
    assert not ok and reasons[0].startswith("c2st_auc")


def test_nan_metrics_fail_and_bad_input_is_rejected():
    ok, reasons = gates({"c2st_auc": float("nan"), "dcr_share": float("nan")})
    assert not ok and len(reasons) == 2
    with pytest.raises(ValueError, match="same columns"):
        dcr(np.zeros((5, 2)), np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        c2st_auc(np.full((10, 1), np.nan), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="feature names"):
        quality_report(np.zeros((10, 2)), np.zeros((10, 2)), np.zeros((10, 2)), ["a"])


def test_holdout_split_keeps_a_share_of_the_frauds_apart():
    frauds = np.arange(200.0).reshape(100, 2)
    holdout, fit = holdout_split(frauds, 0.2, seed=3)
    assert (len(holdout), len(fit)) == (20, 80)
    rows = {tuple(r) for r in np.vstack([holdout, fit])}
    assert len(rows) == 100 and rows == {tuple(r) for r in frauds}  # a partition
    again = holdout_split(frauds, 0.2, seed=3)
    assert np.array_equal(again[0], holdout) and np.array_equal(again[1], fit)
    assert len(holdout_split(frauds[:10], 0.2, seed=0)[0]) == 5  # never fewer than 5
