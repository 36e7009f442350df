"""The detection report's numbers on a small simulated stream."""

from __future__ import annotations

import json

import pytest

from fraudstream.models.detection import (
    DetectionConfig, OnlineSpec, evaluate_detection, format_detection,
)
from fraudstream.stream.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def stream():
    return simulate(SimulationConfig.scaled(400, mix="extended", n_days=30, seed=2))


def test_report_has_every_cell_and_sane_values(stream):
    config = DetectionConfig(test_days=10, online=(OnlineSpec("binned"),
                                                   OnlineSpec("logreg:3", {"model": "logreg",
                                                                           "class_weight_fraud": 3})))
    result = evaluate_detection(stream, config)
    json.dumps(result, allow_nan=False)  # JSON-able as written by the CLI
    assert result["data"]["transactions"] == len(stream)
    assert set(result["batch"]) == set(result["online"]) == {"handbook", "extended"}
    for fs in ("handbook", "extended"):
        assert 0 < result["batch"][fs]["average_precision"] <= 1
        assert set(result["online"][fs]) == {"all", "fraud_only"}
        for mode in ("all", "fraud_only"):
            assert set(result["online"][fs][mode]) == {"binned", "logreg:3"}
            for entry in result["online"][fs][mode].values():
                for window in ("test_window", "since_labels"):
                    m = entry[window]
                    assert 0 <= m["average_precision"] <= 1 and 0 <= m["roc_auc"] <= 1
                    assert 0 <= m["card_precision_at_k"] <= 1
                # Scores rank frauds far above chance once labels have arrived.
                assert entry["test_window"]["average_precision"] > 5 * result["data"]["test_base_rate"]
                assert entry["score_us_per_row"] > 0
    table = format_detection({"extended": result})
    assert table.count("| extended |") == 2 * (1 + 2 * 2) + 1


def test_too_short_a_stream_and_unknown_feature_sets_are_refused(stream):
    with pytest.raises(ValueError, match="too short"):
        evaluate_detection(stream, DetectionConfig(test_days=29))
    with pytest.raises(ValueError, match="unknown feature sets"):
        DetectionConfig(feature_sets=("handbook", "all"))
