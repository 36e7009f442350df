"""The augmentation study: every variant in every window, through the production classifier."""

import json

import numpy as np
import pytest

from fraudstream.models.batch import XGBParams
from fraudstream.models.days import DAY_S
from fraudstream.models.evaluation import (
    EvaluationConfig, evaluate_augmentation, training_set, variant_names)
from fraudstream.models.features import FEATURE_NAMES, compute_features
from fraudstream.models.ranking import METRICS
from fraudstream.stream.simulator import SimulationConfig, simulate


def test_evaluation_gives_every_variant_and_metric_in_range(tiny_evaluation):
    result = tiny_evaluation["result"]
    variants = variant_names([1, 3])
    assert result["variants"] == variants == [
        "none", "class_weight", "smote", "diffusion_x1", "diffusion_x3"
    ]
    assert len(result["per_window"]) == 2
    for window in result["per_window"]:
        n_frauds = window["n_train_frauds"]
        for v in variants:
            m = window["variants"][v]
            for metric in METRICS:
                value = m[metric]
                assert value is None or 0.0 <= value <= 1.0, (v, metric, value)
            assert m["roc_auc"] is not None and m["average_precision"] is not None
        assert window["variants"]["diffusion_x1"]["n_synthetic"] == n_frauds
        assert window["variants"]["diffusion_x3"]["n_synthetic"] == 3 * n_frauds
        smote = window["variants"]["smote"]
        assert smote["n_train"] == 2 * smote["n_train_frauds"]  # balanced classes
        assert window["variants"]["none"]["n_synthetic"] == 0
        q = window["quality"]
        assert 0 <= q["c2st_auc"] <= 1 and 0 <= q["dcr_share"] <= 1
        assert window["diffusion"]["fit_seconds"] > 0
        assert window["diffusion"]["samples_per_second"] > 0
    for v in variants:
        for metric in METRICS:
            stats = result["summary"][v][metric]
            assert len(stats["values"]) == 2 and stats["std"] >= 0
    perf = result["performance"]
    assert perf["device"] == "cpu" and perf["peak_memory_bytes"] > 0
    # Test windows follow each other; nothing from the gap is used.
    a, b = (w["window"] for w in result["per_window"])
    assert b["test_start"] == a["test_end"] and a["test_start"] - a["train_end"] == 2 * DAY_S
    assert any("diffusion fit step" in m for m in tiny_evaluation["messages"])
    assert any(m.strip().startswith("smote") for m in tiny_evaluation["messages"])


def test_result_is_strict_json_with_its_config_and_samples(tiny_evaluation):
    result = tiny_evaluation["result"]
    json.dumps(result, allow_nan=False)
    assert result["config"]["xgb"]["n_estimators"] == 20
    assert result["samples"]["feature_names"] == FEATURE_NAMES
    assert len(result["samples"]["synthetic"]) == 50


def test_variants_train_the_production_classifier_on_their_own_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (rng.random(200) < 0.1).astype(np.int64)
    synth = rng.normal(size=(3 * int(y.sum()), 3))
    xgb = XGBParams(n_estimators=5)
    X_fit, y_fit, params, added = training_set("none", X, y, synth, int(y.sum()), xgb, 0)
    assert X_fit is X and params == xgb and added == 0
    _, _, params, _ = training_set("class_weight", X, y, synth, int(y.sum()), xgb, 0)
    assert params.scale_pos_weight == pytest.approx((200 - y.sum()) / y.sum())
    assert params.booster_params()["scale_pos_weight"] == params.scale_pos_weight
    X_fit, y_fit, _, added = training_set("diffusion_x2", X, y, synth, int(y.sum()), xgb, 0)
    assert added == 2 * y.sum() and len(y_fit) == 200 + added and y_fit.sum() == 3 * y.sum()
    with pytest.raises(ValueError, match="unknown variant"):
        training_set("oversample", X, y, synth, int(y.sum()), xgb, 0)


def test_too_little_data_is_a_clear_error():
    df = simulate(SimulationConfig(n_customers=50, n_terminals=100, n_days=5))
    features = compute_features(df, 7 * DAY_S)
    with pytest.raises(ValueError, match="protocol needs"):
        evaluate_augmentation(df, features, EvaluationConfig(n_windows=2))
