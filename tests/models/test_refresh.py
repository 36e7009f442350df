"""One refresh cycle on a small simulated window: split, synthetic gates, decision, report."""

import contextlib
import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.days import DAY_S
from fraudstream.models.features import FEATURE_NAMES
from fraudstream.models.ranking import score_metrics
from fraudstream.models.refresh import (
    HEADLINE_METRICS, PHASES, CycleTimeout, Deadline, NotEnoughData, RefreshConfig, format_report,
    run_cycle)
from fraudstream.models.window import WindowData
from trainer_helpers import simulated_window

FAST = dict(min_frauds=10, min_fit_frauds=5, diffusion_steps=50, device="cpu",
            xgb=XGBParams(n_estimators=20), synthetic_ratio=0.25)
LENIENT = dict(max_c2st_auc=1.0, max_dcr_share=1.0)
STRICT = dict(max_c2st_auc=0.50001, max_dcr_share=0.000001)


def config(**overrides):
    return RefreshConfig(**{**FAST, **overrides})


@pytest.fixture(scope="module")
def data():
    return simulated_window(unknown_share=0.1)


def with_changes(data, **arrays):
    fields = {name: getattr(data, name) for name in
              ("feature_names", "X", "y", "ts", "card", "tx_id", "score_online")}
    return WindowData(**{**fields, **arrays})


def holdout_mask(data, cfg):
    return data.ts >= data.ts.max() - cfg.holdout_days * DAY_S


@contextlib.contextmanager
def spy_on_training():
    """Record every (X, y) XGBoostModel.train is given."""
    calls = []
    original = XGBoostModel.train.__func__

    def train(cls, X, y, *args, **kwargs):
        calls.append((np.array(X, copy=True), np.array(y, copy=True)))
        return original(cls, X, y, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(XGBoostModel, "train", classmethod(train))
        yield calls


def cycle(data, champion=None, trained_until=None, **overrides):
    """run_cycle with everything it reports recorded."""
    cfg = config(**overrides)
    messages, phases = [], []
    with spy_on_training() as fits:
        result = run_cycle(data, champion, cfg, champion_trained_until=trained_until,
                           progress=messages.append,
                           on_phase=lambda name, s: phases.append((name, s)))
    return result, {"config": cfg, "messages": messages, "phases": phases, "fits": fits}


@pytest.fixture(scope="module")
def accepted(data):
    return cycle(data, **LENIENT)


@pytest.fixture(scope="module")
def rejected(data):
    return cycle(data, **STRICT)


@pytest.fixture(scope="module")
def plain(data):
    return cycle(data, synthetic_ratio=0.0)


class PerfectChampion:
    """A batch model that knows every holdout label (it sees its own feature order)."""

    version = "v-perfect"

    def __init__(self, data):
        self.feature_names = list(reversed(data.feature_names))
        self._labels = {row.tobytes(): label for row, label in zip(data.X[:, ::-1], data.y)}
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        assert X.shape[1] == len(self.feature_names)
        return np.array([float(self._labels[row.tobytes()]) for row in np.ascontiguousarray(X)])


# -- the split ---------------------------------------------------------------------------------


def test_train_ends_a_gap_before_the_holdout(plain, data):
    result, seen = plain
    cfg, split = seen["config"], result.report["split"]
    t_end = data.ts.max()
    assert split["window_last_ts"] == t_end and split["window_first_ts"] == data.ts.min()
    assert split["holdout_start_ts"] == t_end - cfg.holdout_days * DAY_S
    assert split["train_end_ts"] == split["holdout_start_ts"] - cfg.gap_days * DAY_S
    train = data.ts < split["train_end_ts"]
    hold = data.ts >= split["holdout_start_ts"]
    assert split["n_window"] == len(data)
    assert split["n_train"] == train.sum() and split["n_train_frauds"] == data.y[train].sum()
    assert split["n_holdout"] == hold.sum() and split["n_holdout_frauds"] == data.y[hold].sum()
    assert 0 < split["n_train"] and 0 < split["n_holdout"] < split["n_window"] - split["n_train"]
    # what the model was fitted on: exactly the rows before train_end, nothing later
    (X_fit, y_fit), = seen["fits"]
    np.testing.assert_array_equal(X_fit, data.X[train])
    np.testing.assert_array_equal(y_fit, data.y[train])


@pytest.mark.parametrize("holdout_days, gap_days", [(3, 10), (10, 0)])
def test_split_follows_the_configured_days(data, holdout_days, gap_days):
    result, seen = cycle(data, synthetic_ratio=0.0, holdout_days=holdout_days, gap_days=gap_days)
    split = result.report["split"]
    train_end = data.ts.max() - (holdout_days + gap_days) * DAY_S
    assert split["train_end_ts"] == train_end
    (X_fit, _), = seen["fits"]
    assert len(X_fit) == (data.ts < train_end).sum() == split["n_train"]


# -- not enough data ---------------------------------------------------------------------------


def test_too_few_training_frauds(data):
    with pytest.raises(NotEnoughData, match=r"frauds before .* to train on; need 1000000"):
        run_cycle(data, None, config(min_frauds=1_000_000))


def test_a_holdout_without_frauds(data):
    hold = holdout_mask(data, config())
    no_fraud = with_changes(data, y=np.where(hold, 0, data.y))
    with pytest.raises(NotEnoughData, match="holdout .* needs both frauds and legitimate"):
        run_cycle(no_fraud, None, config())


def test_a_holdout_of_only_frauds(data):
    hold = holdout_mask(data, config())
    all_fraud = with_changes(data, y=np.where(hold, 1, data.y))
    with pytest.raises(NotEnoughData, match="holdout"):
        run_cycle(all_fraud, None, config())


def test_an_empty_window(data):
    empty = WindowData(list(FEATURE_NAMES), np.zeros((0, len(FEATURE_NAMES))), np.zeros(0, np.int64),
                       np.zeros(0), np.zeros(0, object), np.zeros(0, object), np.zeros(0))
    with pytest.raises(NotEnoughData, match="empty"):
        run_cycle(empty, None, config())


# -- synthetic frauds ----------------------------------------------------------------------------


def test_no_synthetic_ratio_means_no_diffusion_and_one_model(plain):
    result, seen = plain
    assert result.synthetic_verdict == "none" and result.synthetic is None and result.diffusion is None
    report = result.report
    assert report["synthetic"] == {"verdict": "none", "reason": "synthetic_ratio is 0",
                                   "n_requested": 0, "n_used": 0, "ratio": 0.0, "validation": None,
                                   "target": "none", "n_candidates": 0, "clusters": None,
                                   "novelty": None}
    assert report["quality"] is None and report["diffusion"] is None
    assert report["holdout"]["challenger"] == report["holdout"]["challenger_no_synthetic"]
    assert report["augmentation_delta_ap"] == 0.0
    assert report["comparisons"]["synthetic"] is None  # nothing to put in the ledger
    assert len(seen["fits"]) == 1
    assert [name for name, _ in seen["phases"]] == ["window", "train", "evaluate"]


def test_accepted_synthetic_frauds_are_added_to_the_challengers_training(accepted, data):
    result, seen = accepted
    split = result.report["split"]
    n_synth = round(seen["config"].synthetic_ratio * split["n_train_frauds"])
    assert result.synthetic_verdict == "accepted"
    assert result.synthetic.shape == (n_synth, len(FEATURE_NAMES))
    novelty = result.report["synthetic"]["novelty"]
    assert result.report["synthetic"] == {
        "verdict": "accepted", "reason": "passed the quality gates; ratio 0.25",
        "n_requested": n_synth, "n_used": n_synth, "ratio": 0.25, "validation": None,
        "target": "novel", "n_candidates": 3 * n_synth, "clusters": None, "novelty": novelty}
    # the first candidates, less the near-copies of training frauds
    assert novelty["looked_at"] == n_synth + novelty["dropped"] and novelty["threshold"] > 0
    assert result.report["quality"]["gates_passed"] is True
    assert result.diffusion is not None and result.report["diffusion"]["steps"] == 50
    (X_plain, y_plain), (X_aug, y_aug) = seen["fits"]
    assert len(X_plain) == split["n_train"]
    np.testing.assert_array_equal(X_aug[: len(X_plain)], X_plain)
    np.testing.assert_array_equal(X_aug[len(X_plain):], result.synthetic)
    np.testing.assert_array_equal(y_aug, np.r_[y_plain, np.ones(n_synth)])
    # the challenger is the augmented model, scored on the same holdout
    hold = data.ts >= split["holdout_start_ts"]
    metrics = result.report["holdout"]["challenger"]
    ap = score_metrics(data.y[hold], result.challenger.predict_proba(data.X[hold]),
                       np.zeros(hold.sum()), data.card[hold])["average_precision"]
    assert metrics["average_precision"] == pytest.approx(ap)
    # the ledger's entry: the synthetic rows' gain over the same model without them
    gain = result.report["comparisons"]["synthetic"]
    no_syn = result.report["holdout"]["challenger_no_synthetic"]["average_precision"]
    assert gain["ratio"] == gain["ratio_used"] == 0.25
    assert gain["estimate"] == pytest.approx(metrics["average_precision"] - no_syn)
    assert gain["low"] <= gain["estimate"] <= gain["high"]


def test_failed_gates_reject_the_synthetic_set_and_say_why(rejected):
    result, seen = rejected
    assert result.synthetic_verdict == "rejected" and result.synthetic is None
    synthetic = result.report["synthetic"]
    assert synthetic["verdict"] == "rejected" and synthetic["n_used"] == 0
    assert synthetic["n_requested"] > 0
    assert "c2st_auc" in synthetic["reason"] and "> 0.50001" in synthetic["reason"]
    quality = result.report["quality"]
    assert quality["gates_passed"] is False and quality["gates_reasons"]
    assert "; ".join(quality["gates_reasons"]) == synthetic["reason"]
    assert result.diffusion is not None  # fitted, judged, thrown away
    # the challenger is trained on real rows only, once
    (X_fit, _), = seen["fits"]
    assert len(X_fit) == result.report["split"]["n_train"]
    h = result.report["holdout"]
    assert h["challenger"] == h["challenger_no_synthetic"]
    assert any("synthetic set rejected" in m for m in seen["messages"])
    assert "synthetic: rejected (c2st_auc" in format_report(result.report)


def test_phases_are_reported_in_order(accepted):
    result, seen = accepted
    names = [name for name, _ in seen["phases"]]
    assert names == list(PHASES[:-1])  # all but publish, the caller's
    assert all(s >= 0 for _, s in seen["phases"])
    assert result.phase_seconds == dict(seen["phases"])
    assert result.report["phase_seconds"] == result.phase_seconds
    assert result.phase_seconds["diffusion_fit"] == result.diffusion.fit_seconds_
    assert seen["messages"][0].startswith("window: train ")


# -- the champion and the decision ---------------------------------------------------------------


def test_without_a_champion_the_online_scores_are_the_champion(plain, data):
    result, seen = plain
    cfg, split = seen["config"], result.report["split"]
    hold = data.ts >= split["holdout_start_ts"]
    online = data.score_online[hold]
    known = ~np.isnan(online)
    day = np.floor((data.ts[hold] - split["holdout_start_ts"]) / DAY_S).astype(np.int64)
    expected = score_metrics(data.y[hold], np.where(known, online, 0.0), day, data.card[hold],
                             threshold=cfg.threshold, top_k_cards=cfg.top_k_cards,
                             alert_budget=cfg.alert_budget)
    champion = result.report["holdout"]["champion"]
    assert champion["model"] == "online (scoring-time scores)"
    assert champion["scored_share"] == pytest.approx(known.mean())
    for metric in HEADLINE_METRICS:
        assert champion[metric] == pytest.approx(expected[metric])
    # these online scores are weak: the challenger wins and the reason says by how much
    assert result.promote and result.report["decision"]["promote"] is True
    assert result.report["decision"]["verdict"] == "better"
    gain = result.report["comparisons"]["challenger_vs_champion"]
    assert gain["low"] > cfg.promote_margin and gain["confidence"] == cfg.promote_confidence
    assert gain["estimate"] == pytest.approx(result.report["holdout"]["challenger"]["average_precision"]
                                             - champion["average_precision"])
    assert result.reason.startswith("challenger AP ") and "lower bound > margin 0.005" in result.reason


def test_a_champion_without_holdout_scores_loses(data):
    unscored = with_changes(data, score_online=np.full(len(data), np.nan))
    result, _ = cycle(unscored, synthetic_ratio=0.0)
    assert result.promote and result.reason == "the champion has no holdout scores to compare with"
    champion = result.report["holdout"]["champion"]
    assert champion["average_precision"] is None and champion["scored_share"] == 0.0
    assert "n/a" in format_report(result.report)
    json.dumps(result.report, allow_nan=False)


def test_a_better_champion_is_kept(data):
    champion = PerfectChampion(data)
    result, _ = cycle(data, champion, synthetic_ratio=0.0)
    h = result.report["holdout"]
    assert champion.calls == 1
    assert h["champion"]["model"] == "v-perfect" and h["champion"]["scored_share"] == 1.0
    assert h["champion"]["average_precision"] == 1.0
    assert h["challenger"]["average_precision"] < 1.0
    assert result.promote is False and result.report["decision"]["promote"] is False
    assert "vs champion AP 1.0000" in result.reason and "the champion is better" in result.reason
    assert result.report["decision"]["verdict"] == "worse"
    assert result.report["comparisons"]["challenger_vs_champion"]["high"] < 0
    assert "decision: keep" in format_report(result.report)


def test_a_challenger_that_cannot_be_told_apart_keeps_the_champion(data):
    """The champion is the very model the cycle trains: the gain is 0 on every resample, its
    interval [0, 0] does not clear the margin, and the report says so."""
    twin, _ = twin_of_the_challenger(data, config(synthetic_ratio=0.0))
    result, seen = cycle(data, twin, synthetic_ratio=0.0)
    gain = result.report["comparisons"]["challenger_vs_champion"]
    assert gain["estimate"] == gain["low"] == gain["high"] == 0.0
    assert result.promote is False and result.report["decision"]["verdict"] == "indistinguishable"
    assert "cannot tell the challenger from the champion, keeping the champion" in result.reason
    assert any("cannot tell" in m for m in seen["messages"])
    assert "cannot tell" in format_report(result.report)


def twin_of_the_challenger(data, cfg):
    """A champion identical to the challenger the cycle trains (gain 0 on every resample)."""
    train_end = data.ts.max() - (cfg.holdout_days + cfg.gap_days) * DAY_S
    train = data.ts < train_end
    twin = XGBoostModel.train(data.X[train], data.y[train], data.feature_names, cfg.xgb)
    twin.version = "v-twin"
    return twin, train_end


def test_a_stale_champion_that_cannot_be_told_apart_is_replaced(data):
    """The same twin as above, but its training data ends 20 days before the challenger's
    (stale after 14): the tie goes to the fresher challenger, and the report says why."""
    cfg = config(synthetic_ratio=0.0, stale_after_days=14.0)
    twin, train_end = twin_of_the_challenger(data, cfg)
    result, seen = cycle(data, twin, trained_until=train_end - 20 * DAY_S, synthetic_ratio=0.0,
                         stale_after_days=14.0)
    decision = result.report["decision"]
    assert result.promote is True and decision["promote"] is True
    assert decision["verdict"] == "indistinguishable" and decision["champion_stale"] is True
    assert decision["champion_staleness_days"] == pytest.approx(20.0)
    assert decision["stale_after_days"] == cfg.stale_after_days == 14.0
    assert "ends 20.0 days before the challenger's (stale after 14)" in result.reason
    assert "the fresher challenger replaces it" in result.reason
    assert any("fresher challenger" in m for m in seen["messages"])
    # 13 days: not stale yet, so the tie keeps the champion.
    fresh, _ = cycle(data, twin, trained_until=train_end - 13 * DAY_S, synthetic_ratio=0.0,
                     stale_after_days=14.0)
    assert fresh.promote is False and fresh.report["decision"]["champion_stale"] is False
    assert fresh.report["decision"]["champion_staleness_days"] == pytest.approx(13.0)
    # Staleness switched off (the default), or not known: never stale.
    off, _ = cycle(data, twin, trained_until=train_end - 100 * DAY_S, synthetic_ratio=0.0)
    assert RefreshConfig().stale_after_days == 0.0
    unknown, _ = cycle(data, twin, synthetic_ratio=0.0, stale_after_days=14.0)
    assert off.promote is False and off.report["decision"]["champion_stale"] is False
    assert unknown.promote is False
    assert unknown.report["decision"]["champion_staleness_days"] is None


def test_a_stale_champion_that_is_better_is_kept(data):
    champion = PerfectChampion(data)
    train_end = data.ts.max() - (config().holdout_days + config().gap_days) * DAY_S
    result, _ = cycle(data, champion, trained_until=train_end - 30 * DAY_S, synthetic_ratio=0.0,
                      stale_after_days=14.0)
    assert result.promote is False and result.report["decision"]["champion_stale"] is True
    assert result.report["decision"]["verdict"] == "worse"
    assert "the champion is better: keeping it" in result.reason


def test_a_point_estimate_above_the_margin_is_not_enough(data):
    """A champion a little worse than the challenger on this holdout, by more than the margin
    on the point estimate, but within the noise: the old rule promoted it, this one does not."""
    hold = holdout_mask(data, config())
    plain_result, _ = cycle(data, synthetic_ratio=0.0)
    ap = plain_result.report["holdout"]["challenger"]["average_precision"]
    rng = np.random.default_rng(3)

    class NoisyTwin:
        version, feature_names = "v-noisy", list(data.feature_names)

        def predict_proba(self, X):
            base = plain_result.challenger.predict_proba(X)
            return np.clip(base + rng.normal(0, 0.02, len(base)), 0, 1)

    result, _ = cycle(data, NoisyTwin(), synthetic_ratio=0.0)
    gain = result.report["comparisons"]["challenger_vs_champion"]
    champion_ap = result.report["holdout"]["champion"]["average_precision"]
    assert hold.sum() > 0 and ap - champion_ap == pytest.approx(gain["estimate"])
    assert gain["estimate"] > 0 and gain["low"] <= 0.005 < gain["high"], gain
    assert result.promote is False and result.report["decision"]["verdict"] == "indistinguishable"


def test_a_negative_margin_promotes_even_a_worse_challenger(data):
    result, _ = cycle(data, PerfectChampion(data), synthetic_ratio=0.0, promote_margin=-1.0)
    assert result.promote is True and result.report["decision"]["margin"] == -1.0
    assert "margin -1" in result.reason
    assert result.report["comparisons"]["challenger_vs_champion"]["high"] < 0  # and yet promoted


# -- time limits ---------------------------------------------------------------------------------


def test_deadline_without_a_limit_never_fires():
    d = Deadline(None)
    assert d.ends == math.inf
    d.check()


def test_an_expired_deadline_raises():
    d = Deadline(0)
    time.sleep(0.001)
    with pytest.raises(CycleTimeout, match="ran past its 0 s limit"):
        d.check()
    Deadline(60).check()


def test_a_cycle_past_its_deadline_stops_after_the_first_phase(data):
    phases = []
    with pytest.raises(CycleTimeout):
        run_cycle(data, None, config(), deadline=Deadline(0),
                  on_phase=lambda name, s: phases.append(name))
    assert phases == ["window"]


def test_the_deadline_holds_inside_xgboost_training(data):
    class ExpiresOnThirdCheck:
        checks = 0

        def check(self):
            self.checks += 1
            if self.checks == 3:
                raise CycleTimeout("expired")

    deadline = ExpiresOnThirdCheck()
    phases = []
    with pytest.raises(CycleTimeout, match="expired"):
        run_cycle(data, None, config(synthetic_ratio=0.0, xgb=XGBParams(n_estimators=500)),
                  deadline=deadline, on_phase=lambda name, s: phases.append(name))
    assert phases == ["window"] and deadline.checks == 3  # window, then two boosting rounds


# -- the report ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["accepted", "rejected", "plain"])
def test_the_report_is_strict_json(request, which):
    result, _ = request.getfixturevalue(which)
    text = json.dumps(result.report, allow_nan=False)
    back = json.loads(text)
    assert set(back) == {"split", "config", "synthetic", "quality", "diffusion", "holdout",
                         "comparisons", "augmentation_delta_ap", "decision", "phase_seconds"}
    assert back["config"]["xgb"]["n_estimators"] == 20
    for column in ("champion", "challenger", "challenger_no_synthetic"):
        assert set(HEADLINE_METRICS) <= set(back["holdout"][column])


def test_format_report_shows_the_three_columns(accepted):
    result, _ = accepted
    text = format_report(result.report)
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:2] == ["holdout", "metric"]
    assert header[2:] == ["champion", "challenger", "no", "synthetic"]
    h = result.report["holdout"]
    for metric, line in zip(HEADLINE_METRICS, lines[1:4]):
        cells = line.split()
        assert cells[0] == metric
        expected = [h[c][metric] for c in ("champion", "challenger", "challenger_no_synthetic")]
        assert [float(c) for c in cells[1:]] == pytest.approx(expected, abs=5e-5)
    gains = result.report["comparisons"]
    for line, key in zip(lines[4:6], ("challenger_vs_champion", "synthetic")):
        g = gains[key]
        assert f"{g['estimate']:+.4f}" in line and f"[{g['low']:+.4f}, {g['high']:+.4f}]" in line
    assert lines[4].startswith("AP gain over champion") and lines[5].startswith("AP gain of synthetic")
    assert lines[6].startswith("synthetic: accepted (passed the quality gates; ratio 0.25); decision: ")
    assert len(lines) == 7


# -- the synthetic ratio, chosen by validation inside the training period ----------------------


@pytest.fixture(scope="module")
def validated(data):
    # boundary: its selector model must not see the validation days either
    return cycle(data, ratio_candidates=(0.0, 0.25, 0.5), validation_days=4.0,
                 synthesis_target="boundary", **LENIENT)


def test_validation_never_looks_past_the_training_period(validated, data):
    result, seen = validated
    cfg, split = seen["config"], result.report["split"]
    validation = result.report["synthetic"]["validation"]
    val_start = split["train_end_ts"] - cfg.validation_days * DAY_S
    val = (data.ts >= val_start) & (data.ts < split["train_end_ts"])
    assert validation["n_rows"] == val.sum() and validation["n_frauds"] == data.y[val].sum()
    assert set(validation["average_precision"]) == {"0", "0.25", "0.5"}
    # every model fitted in the cycle saw real rows from before train_end only (plus synthetic
    # rows); the three validation models only rows from before the validation days
    real = {row.tobytes() for row in data.X[data.ts < split["train_end_ts"]]}
    inner = {row.tobytes() for row in data.X[data.ts < val_start]}
    synthetic = {row.tobytes() for row in result.synthetic}
    fits = seen["fits"]
    # the model that picks the boundary candidates, plain, three candidates, and the
    # challenger or the ledger's model
    assert len(fits) >= 5
    for i, (X_fit, _) in enumerate(fits):
        rows = {row.tobytes() for row in X_fit}
        assert rows <= real | synthetic, i
    assert {row.tobytes() for row in fits[0][0]} <= inner  # the selector: real inner rows only
    for X_fit, _ in fits[2:5]:
        assert {row.tobytes() for row in X_fit} <= inner | synthetic


def test_validation_picks_the_best_ratio_and_the_challenger_uses_it(validated):
    result, seen = validated
    synthetic = result.report["synthetic"]
    aps = {float(r): ap for r, ap in synthetic["validation"]["average_precision"].items()}
    best = max(aps.values())
    assert synthetic["ratio"] == min(r for r, ap in aps.items() if ap == best)
    assert synthetic["validation"]["chosen"] == synthetic["ratio"]
    n_frauds = result.report["split"]["n_train_frauds"]
    assert synthetic["n_used"] == round(synthetic["ratio"] * n_frauds)
    assert synthetic["n_requested"] == round(0.5 * n_frauds)  # the largest candidate
    assert synthetic["reason"].endswith(f"ratio {synthetic['ratio']:g} chosen by validation")
    # the ledger measures synthetic rows on the holdout even when validation chose none
    gain = result.report["comparisons"]["synthetic"]
    assert gain["ratio"] > 0 and gain["ratio_used"] == synthetic["ratio"]
    if synthetic["ratio"] == 0:
        assert gain["ratio"] == max((r for r in aps if r > 0), key=aps.get)


def test_the_diffusion_model_never_sees_the_validation_frauds(data, monkeypatch):
    import fraudstream.models.refresh as refresh

    fitted = []
    original = refresh.synthesize_frauds

    def spy(rows, *args, **kwargs):
        fitted.append(np.array(rows, copy=True))
        return original(rows, *args, **kwargs)

    monkeypatch.setattr(refresh, "synthesize_frauds", spy)
    result, seen = cycle(data, ratio_candidates=(0.0, 0.25), validation_days=4.0, **LENIENT)
    val_start = result.report["split"]["train_end_ts"] - 4.0 * DAY_S
    inner_frauds = {row.tobytes() for row in data.X[(data.ts < val_start) & (data.y == 1)]}
    (rows,) = fitted
    assert {row.tobytes() for row in rows} <= inner_frauds
    assert len(rows) + result.report["quality"]["n_holdout"] == len(inner_frauds)


def test_validation_that_cannot_run_falls_back_to_the_fixed_ratio(data):
    result, _ = cycle(data, ratio_candidates=(0.0, 0.25), validation_days=1000.0, **LENIENT)
    synthetic = result.report["synthetic"]
    assert "frauds before the validation days" in synthetic["validation"]["skipped"]
    assert synthetic["ratio"] == 0.25 and synthetic["n_used"] > 0


def test_synthesis_switched_off_skips_the_diffusion_and_says_why(data):
    cfg = config(ratio_candidates=(0.0, 0.25), **LENIENT)
    messages, phases = [], []
    result = run_cycle(data, None, cfg, synthesis_off="the ledger shows no gain",
                       progress=messages.append, on_phase=lambda name, s: phases.append(name))
    assert result.diffusion is None and result.synthetic is None
    assert result.report["synthetic"]["verdict"] == "none"
    assert result.report["synthetic"]["reason"] == "the ledger shows no gain"
    assert result.report["comparisons"]["synthetic"] is None
    assert phases == ["window", "train", "evaluate"]


def test_production_does_not_import_the_study():
    """The trainer imports the refresh cycle; the augmentation study's SMOTE (imblearn) and
    plots (matplotlib) stay out of its process."""
    code = ("import sys, fraudstream.models.refresh; "
            "print(sorted(m for m in ('imblearn', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_too_few_frauds_to_fit_the_generator_means_no_synthesis(data):
    result, seen = cycle(data, min_fit_frauds=100_000, **LENIENT)
    synthetic = result.report["synthetic"]
    assert result.synthetic_verdict == "none" and result.diffusion is None
    assert synthetic["n_requested"] == 0 and "frauds to fit the diffusion model on, fewer than " \
        "100000" in synthetic["reason"]
    assert "diffusion_fit" not in [name for name, _ in seen["phases"]]
