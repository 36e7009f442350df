"""The detection report's numbers on a small simulated stream, and the handbook protocol's
windows, exclusions and validation on a tiny synthetic one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraudstream.models import detection_handbook as hb
from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.days import DAY_S
from fraudstream.models.detection import (
    DetectionConfig, OnlineSpec, evaluate_detection, format_detection,
)
from fraudstream.models.detection_handbook import (
    HANDBOOK_PROTOCOL, XGBGrid, evaluate_handbook, grid_scores, handbook_windows,
)
from fraudstream.models.evaluation_windows import WindowProtocol
from fraudstream.stream.simulator import SimulationConfig, simulate

SMALL_GRID = XGBGrid(max_depth=(2, 3), n_estimators=(5, 15), learning_rate=(0.3,))
SMALL_XGB = XGBParams(n_estimators=20, max_depth=3)


@pytest.fixture(scope="module")
def stream():
    return simulate(SimulationConfig.scaled(250, mix="extended", n_days=43, seed=2))


def test_report_has_every_cell_and_sane_values(stream):
    config = DetectionConfig(test_days=10, online=(OnlineSpec("binned"),
                                                   OnlineSpec("logreg:3", {"model": "logreg",
                                                                           "class_weight_fraud": 3})),
                             handbook=WindowProtocol(n_windows=3, burn_in_days=7),
                             grid=SMALL_GRID, xgb=SMALL_XGB)
    result = evaluate_detection(stream, config)
    json.dumps(result, allow_nan=False)  # JSON-able as written by the CLI
    assert result["data"]["transactions"] == len(stream)
    assert set(result["batch"]) == set(result["online"]) == set(result["batch_handbook"]) \
        == {"handbook", "extended"}
    for fs in ("handbook", "extended"):
        assert 0 < result["batch"][fs]["average_precision"] <= 1
        h = result["batch_handbook"][fs]
        assert h["protocol"]["n_windows_fitted"] == len(h["windows"]) == 1  # 43 days hold one
        assert h["protocol"]["exclude_known_cards"] and h["protocol"]["validation_shift_days"] == 14
        for key in ("average_precision", "roc_auc", "card_precision_at_k"):
            assert set(h["summary"][key]) >= {"mean", "low", "high", "n", "values"}
        assert 0 < h["summary"]["average_precision"]["mean"] <= 1
        assert 0 < h["summary"]["defaults"]["average_precision"]["mean"] <= 1
        assert len(h["summary"]["grid_means"]) == 2 * 2 * 1
        assert h["defaults"] == {"max_depth": 3, "n_estimators": 20, "learning_rate": 0.1}
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
                # Weeks and "since labels" start at the first label the learner learned.
                assert entry["first_label_day"] >= 7.0
    table = format_detection({"extended": result})
    # Per feature set: time split, handbook tuned and defaults, 2 modes x 2 learners; the base
    # rate; then one row per handbook window and feature set.
    assert table.count("| extended |") == 2 * (3 + 2 * 2) + 1 + 2
    assert "| extended | extended | batch XGBoost | handbook 7/7/7 d x1, tuned on validation |" in table
    assert "trainer defaults 3/20/0.1" in table


def test_too_short_a_stream_and_unknown_feature_sets_are_refused(stream):
    with pytest.raises(ValueError, match="too short"):
        evaluate_detection(stream, DetectionConfig(test_days=42, handbook=None))
    with pytest.raises(ValueError, match="too short for the handbook"):
        evaluate_detection(stream.loc[stream["ts"] < stream["ts"].min() + 40 * DAY_S],
                           DetectionConfig(test_days=10))
    with pytest.raises(ValueError, match="unknown feature sets"):
        DetectionConfig(feature_sets=("handbook", "all"))
    with pytest.raises(ValueError, match="at least one value"):
        XGBGrid(max_depth=())


def test_time_split_trains_on_the_trainers_window_of_known_labels(stream):
    """The batch model trains on the last ``train_days`` of labels known at the test window's
    start, as the trainer does, not on every day since the burn-in."""
    quick = dict(feature_sets=("handbook",), label_modes=("all",), handbook=None, xgb=SMALL_XGB,
                 test_days=10)
    ts = stream["ts"].to_numpy()
    start = np.floor(ts.min() / DAY_S) * DAY_S
    test_from = start + 43 * DAY_S - 10 * DAY_S
    windowed = evaluate_detection(stream, DetectionConfig(train_days=12, **quick))["data"]
    assert windowed["train_from_day"] == 43 - 10 - 7 - 12
    expected = ((ts >= test_from - 19 * DAY_S) & (ts <= test_from - 7 * DAY_S)).sum()
    assert windowed["train_rows"] == expected
    everything = evaluate_detection(stream, DetectionConfig(train_days=None, **quick))["data"]
    assert everything["train_from_day"] == 7  # the burn-in
    assert everything["train_rows"] > windowed["train_rows"]
    with pytest.raises(ValueError, match="train_days"):
        DetectionConfig(train_days=0)


def test_handbook_windows_are_consecutive_weeks_after_their_validation():
    start = 1_000 * DAY_S
    pairs = handbook_windows(start, start + 63 * DAY_S)
    assert len(pairs) == HANDBOOK_PROTOCOL.n_windows == 4
    assert pairs[-1][1].test_end == start + 63 * DAY_S  # the latest weeks
    for i, (validation, test) in enumerate(pairs):
        assert test.index == i
        assert test.train_end - test.train_start == 7 * DAY_S
        assert test.test_start - test.train_end == 7 * DAY_S  # the delay
        assert test.test_end - test.test_start == 7 * DAY_S
        # Validation: shifted back by delay + test; its test week is the training week,
        # whose labels have all arrived when the test week starts.
        assert validation.test_start == test.train_start
        assert validation.test_end + 7 * DAY_S <= test.test_start
        assert validation.train_start >= start + HANDBOOK_PROTOCOL.burn_in_days * DAY_S
        if i:
            assert test.test_start == pairs[i - 1][1].test_end  # consecutive, no overlap
    # A shorter stream holds fewer; too short a one none.
    assert len(handbook_windows(start, start + 50 * DAY_S)) == 2
    assert len(handbook_windows(start, start + 42 * DAY_S)) == 1
    with pytest.raises(ValueError, match="42 needed"):
        handbook_windows(start, start + 41 * DAY_S)


def test_fewer_rounds_of_the_grid_are_the_shorter_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3))
    y = (X[:, 0] + rng.normal(size=1500) > 2.0).astype(float)
    names = ["a", "b", "c"]
    out = grid_scores(X, y, X[:300], names, XGBGrid(max_depth=(3,), n_estimators=(25, 60),
                                                    learning_rate=(0.3,)), XGBParams())
    assert [p.n_estimators for p, _ in out] == [25, 60]
    alone = XGBoostModel.train(X, y, names, XGBParams(n_estimators=25, max_depth=3,
                                                      learning_rate=0.3)).predict_proba(X[:300])
    np.testing.assert_allclose(out[0][1], alone, rtol=1e-6)
    assert not np.allclose(out[1][1], alone)


def _synthetic(days: int = 50, cards: int = 150, seed: int = 0):
    """Three transactions per card a day; a compromised card's frauds (three days of them)
    have a high ``signal``. Feature 0 is the time, so a fit shows which rows it saw."""
    rng = np.random.default_rng(seed)
    start = 2_000 * DAY_S
    n = days * cards * 3
    ts = start + np.sort(rng.uniform(0, days * DAY_S, n))
    card = rng.integers(0, cards, n)
    hit_day = np.where(rng.random(cards) < 0.5, rng.integers(0, days, cards), -10)
    d = ((ts - start) // DAY_S).astype(int)
    y = (d >= hit_day[card]) & (d < hit_day[card] + 3)
    X = np.column_stack([ts, rng.normal(size=n) + 2.5 * y, rng.normal(size=n)])
    return X, ts, y, card, start, start + days * DAY_S


def test_handbook_protocol_excludes_known_cards_and_validates_before_the_test(monkeypatch):
    X, ts, y, card, start, end = _synthetic()
    pairs = handbook_windows(start, end, WindowProtocol(n_windows=2, burn_in_days=7))
    calls = []
    real = hb.grid_scores

    def spy(X_fit, y_fit, X_eval, *args, **kwargs):
        calls.append((X_fit[:, 0].min(), X_fit[:, 0].max(), X_eval[:, 0].min(), X_eval[:, 0].max()))
        return real(X_fit, y_fit, X_eval, *args, **kwargs)

    monkeypatch.setattr(hb, "grid_scores", spy)
    result = evaluate_handbook(X, ts, y, card, ["ts", "signal", "noise"], pairs,
                               grid=SMALL_GRID, base=SMALL_XGB, top_k=5)
    json.dumps(result, allow_nan=False)
    assert len(result["windows"]) == 2 and len(calls) == 4  # validation, test per window
    frame = pd.DataFrame({"ts": ts, "card": card, "y": y})
    for i, (w, (validation, test)) in enumerate(zip(result["windows"], pairs)):
        # The validation fit and its scored rows all lie before the test week (and before its
        # labels could be known); the test fit sees the training week only.
        v_fit_min, v_fit_max, v_eval_min, v_eval_max = calls[2 * i]
        assert validation.train_start <= v_fit_min and v_fit_max < validation.train_end
        assert test.train_start <= v_eval_min and v_eval_max < test.train_end
        t_fit_min, t_fit_max, t_eval_min, t_eval_max = calls[2 * i + 1]
        assert test.train_start <= t_fit_min and t_fit_max < test.train_end
        assert test.test_start <= t_eval_min and t_eval_max < test.test_end
        # Known cards, counted independently: a fraud since the training start whose label
        # has arrived by the test day's midnight.
        in_test = frame[(frame.ts >= test.test_start) & (frame.ts < test.test_end)]
        frauds = frame[frame.y & (frame.ts >= test.train_start)]
        midnight = test.test_start + (in_test.ts - test.test_start) // DAY_S * DAY_S
        first = in_test.card.map(frauds.groupby("card").ts.min()).fillna(np.inf)
        known = int((first < midnight - 7 * DAY_S).sum())
        assert known > 0
        assert w["rows"]["test_known_cards_excluded"] == known
        assert w["rows"]["test"] == len(in_test) - known
        # The choice is the best grid point on validation, whatever the test says.
        best = max(w["grid"], key=lambda g: g["validation_average_precision"])
        assert w["chosen"] == {k: best[k] for k in ("max_depth", "n_estimators", "learning_rate")}
        assert w["test"]["average_precision"] == pytest.approx(next(
            g["test_average_precision"] for g in w["grid"]
            if {k: g[k] for k in w["chosen"]} == w["chosen"]))
        assert w["test"]["average_precision"] > 0.5  # the signal is strong
    s = result["summary"]
    assert s["average_precision"]["n"] == 2
    assert s["average_precision"]["low"] <= s["average_precision"]["mean"] <= s["average_precision"]["high"]
    assert s["average_precision"]["values"] == [w["test"]["average_precision"] for w in result["windows"]]
