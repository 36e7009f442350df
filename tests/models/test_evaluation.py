"""Utility evaluation: the handbook's protocol and metrics, variants, the JSON and the report."""

import json
import math

import numpy as np
import pytest

from fraudstream.models.evaluation import (
    DAY_S,
    METRICS,
    EvaluationConfig,
    alert_budget_metrics,
    card_precision_at_k,
    evaluate_augmentation,
    format_table,
    protocol_windows,
    required_days,
    score_metrics,
    split_window,
    variant_names,
    write_report,
)
from fraudstream.models.features import FEATURE_NAMES, compute_features
from fraudstream.stream.simulator import SimulationConfig, simulate



# -- protocol ------------------------------------------------------------------------------


def test_windows_respect_the_gap_and_test_windows_do_not_overlap():
    windows = protocol_windows(
        100.0, 4, train_days=7, delay_days=5, test_days=3, burn_in_days=10
    )
    assert [w.index for w in windows] == [0, 1, 2, 3]
    assert windows[0].train_start == 100.0 + 10 * DAY_S
    for w in windows:
        assert w.train_end - w.train_start == 7 * DAY_S
        assert w.test_start - w.train_end == 5 * DAY_S  # the label-delay gap
        assert w.test_end - w.test_start == 3 * DAY_S
    for a, b in zip(windows, windows[1:]):
        assert b.test_start == a.test_end  # consecutive, shifted by the test length
        assert b.train_start - a.train_start == 3 * DAY_S
    assert windows[-1].test_end == 100.0 + required_days(
        4, train_days=7, delay_days=5, test_days=3, burn_in_days=10
    ) * DAY_S
    with pytest.raises(ValueError):
        protocol_windows(0.0, 0)


def test_split_window_drops_cards_whose_fraud_label_has_arrived():
    (w,) = protocol_windows(0.0, 1, train_days=2, delay_days=1, test_days=2)
    # test days start at 3d and 4d; a fraud is known on a test day if ts < day start - 1d.
    rows = [  # (day, card, fraud)
        (-1.0, "D", 1),  # before training: not counted, as in the handbook
        (0.5, "A", 1),  # training fraud: A is known for the whole test
        (1.0, "B", 0),
        (2.5, "B", 1),  # in the gap: known from test day 1 (4d - 1d = 3d > 2.5d)
        (3.2, "C", 1),  # test day 0: not known yet on test day 1 (4d - 1d = 3d < 3.2d)
        (3.5, "A", 0),
        (3.5, "B", 0),
        (3.6, "D", 0),
        (4.5, "A", 0),
        (4.5, "B", 0),
        (4.6, "C", 1),
        (5.5, "C", 0),  # after the test window
    ]
    ts = np.array([r[0] for r in rows]) * DAY_S
    card = np.array([r[1] for r in rows], dtype=object)
    y = np.array([r[2] for r in rows])
    train, test = split_window(ts, card, y, w, delay_days=1)
    assert train.tolist() == [1, 2]
    kept = [(rows[i][0], rows[i][1]) for i in test]
    assert kept == [(3.2, "C"), (3.5, "B"), (3.6, "D"), (4.6, "C")]
    _, everything = split_window(ts, card, y, w, delay_days=1, exclude_known_cards=False)
    assert everything.tolist() == list(range(4, 11))


# -- metrics -------------------------------------------------------------------------------


def test_card_precision_at_k_by_hand():
    # day 0: cards a (max score 0.9, fraud), b (0.8, legit), c (0.3 and 0.05, one fraud);
    # day 1: a again (0.95, fraud), c (0.7, fraud), d (0.6, legit), e (0.1, fraud).
    day = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    card = ["a", "b", "b", "c", "c", "a", "c", "d", "e"]
    y = [1, 0, 0, 1, 0, 1, 1, 0, 1]
    score = [0.9, 0.8, 0.2, 0.3, 0.05, 0.95, 0.7, 0.6, 0.1]
    # top 2 day 0: a, b -> 1/2. a is detected and left out on day 1: top 2 c, d -> 1/2.
    assert card_precision_at_k(day, card, y, score, k=2) == (0.5, [0.5, 0.5])
    # Without removal, day 1's top 2 are a and c -> 2/2.
    assert card_precision_at_k(day, card, y, score, k=2, remove_detected=False) == (
        0.75, [0.5, 1.0]
    )
    # k above the active cards still divides by k (handbook): day 0 has 2 compromised cards.
    # Day 0 finds a and c; day 1 leaves both out and finds e alone.
    assert card_precision_at_k(day, card, y, score, k=10) == (pytest.approx(0.15), [0.2, 0.1])


def test_alert_budget_counts_per_day_and_as_a_share():
    day = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.5, 0.4])
    two = alert_budget_metrics(day, y, score, budget=2)  # alerts: 0.9, 0.8 | 0.7, 0.6
    assert two == {"precision": 0.5, "recall": pytest.approx(2 / 3), "n_alerts": 4}
    share = alert_budget_metrics(day, y, score, budget=0.25)  # ceil(0.25 * 4) = 1 a day
    assert share == {"precision": 0.5, "recall": pytest.approx(1 / 3), "n_alerts": 2}


def test_score_metrics_of_a_perfect_and_a_useless_ranking():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.05
    day = np.repeat(np.arange(4), 500)
    card = rng.integers(0, 300, 2000).astype(str)
    perfect = score_metrics(y, y.astype(float), day, card, alert_budget=1000)
    assert perfect["roc_auc"] == 1 and perfect["average_precision"] == 1
    assert perfect["recall_at_threshold"] == 1 and perfect["precision_at_threshold"] == 1
    assert perfect["recall_at_budget"] == 1
    blind = score_metrics(y, np.zeros(2000), day, card)
    assert blind["roc_auc"] == 0.5 and blind["recall_at_threshold"] == 0
    assert math.isnan(blind["precision_at_threshold"])  # nothing flagged
    assert set(METRICS) <= set(perfect)


# -- the evaluation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> dict:
    df = simulate(SimulationConfig(
        n_customers=400, n_terminals=800, n_days=15, seed=1,
        compromised_terminals_per_day=1, compromised_customers_per_day=1,
    ))  # fmt: skip
    config = EvaluationConfig(
        n_windows=2, burn_in_days=2, train_days=5, delay_days=2, test_days=3,
        ratios=(1, 3), n_estimators=20, max_depth=3, diffusion_steps=30,
        diffusion_hidden=(16, 16), extra_diffusion_params={"n_steps": 20},
        device="cpu", seed=0, plot_samples=50,
    )  # fmt: skip
    messages: list[str] = []
    features = compute_features(df, config.delay_days * DAY_S)
    result = evaluate_augmentation(df, features, config, progress=messages.append)
    return {"result": result, "messages": messages, "config": config}


def test_evaluation_gives_every_variant_and_metric_in_range(tiny):
    result = tiny["result"]
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
    assert any("diffusion fit step" in m for m in tiny["messages"])
    assert any(m.strip().startswith("smote") for m in tiny["messages"])


def test_result_is_strict_json_and_table_lists_variants(tiny):
    result = tiny["result"]
    json.dumps(result, allow_nan=False)
    table = format_table(result)
    for v in result["variants"]:
        assert v in table
    assert "CP@100" in table and "±" in table
    assert format_table(result, markdown=True).startswith("| variant |")
    assert result["samples"]["feature_names"] == FEATURE_NAMES
    assert len(result["samples"]["synthetic"]) == 50


def test_report_writes_markdown_and_plots(tiny, tmp_path):
    paths = write_report(tiny["result"], tmp_path / "report")
    for name in ("report", "pr_curves", "metrics", "projection", "marginals"):
        assert paths[name].exists() and paths[name].stat().st_size > 0, name
    for name in ("pr_curves", "metrics", "projection", "marginals"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["report"].read_text()
    assert "diffusion_x3" in text and "C2ST" in text and "(projection.png)" in text


def test_too_little_data_is_a_clear_error():
    df = simulate(SimulationConfig(n_customers=50, n_terminals=100, n_days=5))
    features = compute_features(df, 7 * DAY_S)
    with pytest.raises(ValueError, match="protocol needs"):
        evaluate_augmentation(df, features, EvaluationConfig(n_windows=2))


def test_the_report_leads_with_the_results_across_seeds(tiny, tmp_path):
    from fraudstream.models.evaluation import summarize_seeds

    result = dict(tiny["result"])
    result["seeds"] = summarize_seeds([tiny["result"], tiny["result"]])
    json.dumps(result, allow_nan=False)
    text = write_report(result, tmp_path / "report")["report"].read_text()
    across = text.index("## Results across 2 seeds")
    assert across < text.index("## Results (mean ± std across windows)")
    assert "| diffusion_x3 |" in text[across:] and "The rest of this report is seed 0's." in text
