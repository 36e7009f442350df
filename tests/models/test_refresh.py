"""One refresh cycle on a small simulated window: split, synthetic gates, decision, report."""

import contextlib
import json
import math
import time

import numpy as np
import pytest

from fraudstream.models.batch import XGBoostModel, XGBParams
from fraudstream.models.evaluation import DAY_S, score_metrics
from fraudstream.models.features import FEATURE_NAMES, compute_features
from fraudstream.models.refresh import (
    HEADLINE_METRICS, PHASES, CycleTimeout, Deadline, NotEnoughData, RefreshConfig, format_report,
    run_cycle)
from fraudstream.models.window import WindowData
from fraudstream.stream.simulator import SimulationConfig, simulate

FAST = dict(min_frauds=10, diffusion_steps=50, device="cpu", xgb=XGBParams(n_estimators=20),
            synthetic_ratio=0.25)
LENIENT = dict(max_c2st_auc=1.0, max_dcr_share=1.0)
STRICT = dict(max_c2st_auc=0.50001, max_dcr_share=0.000001)


def config(**overrides):
    return RefreshConfig(**{**FAST, **overrides})


@pytest.fixture(scope="module")
def data():
    df = simulate(SimulationConfig(n_customers=400, n_terminals=800, n_days=30))
    features = compute_features(df, 7 * 86400)
    order = np.argsort(df["ts"].to_numpy(), kind="stable")
    y = df["is_fraud"].to_numpy(dtype=np.int64)[order]
    rng = np.random.default_rng(0)
    # The online learner's scores at scoring time: informative, imperfect, some unknown.
    online = np.clip(0.35 * y + rng.uniform(0, 0.7, len(y)), 0, 1)
    online[rng.random(len(y)) < 0.1] = np.nan
    return WindowData(
        feature_names=list(FEATURE_NAMES),
        X=features[FEATURE_NAMES].to_numpy(dtype=np.float64)[order],
        y=y,
        ts=df["ts"].to_numpy(dtype=np.float64)[order],
        card=df["card_id"].to_numpy(dtype=object)[order],
        tx_id=df["tx_id"].to_numpy(dtype=object)[order],
        score_online=online,
    )


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


def cycle(data, champion=None, **overrides):
    """run_cycle with everything it reports recorded."""
    cfg = config(**overrides)
    messages, phases = [], []
    with spy_on_training() as fits:
        result = run_cycle(data, champion, cfg, progress=messages.append,
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
                                   "n_requested": 0, "n_used": 0}
    assert report["quality"] is None and report["diffusion"] is None
    assert report["holdout"]["challenger"] == report["holdout"]["challenger_no_synthetic"]
    assert report["augmentation_delta_ap"] == 0.0
    assert len(seen["fits"]) == 1
    assert [name for name, _ in seen["phases"]] == ["window", "train", "evaluate"]


def test_accepted_synthetic_frauds_are_added_to_the_challengers_training(accepted, data):
    result, seen = accepted
    split = result.report["split"]
    n_synth = round(seen["config"].synthetic_ratio * split["n_train_frauds"])
    assert result.synthetic_verdict == "accepted"
    assert result.synthetic.shape == (n_synth, len(FEATURE_NAMES))
    assert result.report["synthetic"] == {"verdict": "accepted", "reason": "passed the quality gates",
                                          "n_requested": n_synth, "n_used": n_synth}
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
    assert result.reason.startswith("challenger AP ") and ">= champion AP" in result.reason


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
    assert " < champion AP 1.0000" in result.reason
    assert "decision: keep" in format_report(result.report)


def test_a_negative_margin_promotes_even_a_worse_challenger(data):
    result, _ = cycle(data, PerfectChampion(data), synthetic_ratio=0.0, promote_margin=-1.0)
    assert result.promote is True and result.report["decision"]["margin"] == -1.0
    assert "margin -1" in result.reason


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
                         "augmentation_delta_ap", "decision", "phase_seconds"}
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
    assert lines[4].startswith("synthetic: accepted (passed the quality gates); decision: ")
    assert len(lines) == 5
