"""The paired bootstrap of the AP gain: its intervals behave (its AP: test_ranking.py)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudstream.models.paired import GainInterval, paired_ap_gain, paired_mean_ap_gain, verdict
from fraudstream.models.ranking import average_precision


def rows(n=4000, rate=0.02, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rate
    y[:2] = [True, False]
    return y, rng


def test_identical_scores_gain_exactly_nothing():
    y, rng = rows()
    score = rng.random(len(y)) + y
    g = paired_ap_gain(y, score, score.copy(), resamples=200)
    assert (g.estimate, g.low, g.high, g.se) == (0.0, 0.0, 0.0, 0.0)
    assert g.share_not_above_zero == 1.0 and verdict(g, 0.0) == "indistinguishable"


def test_a_clearly_better_model_clears_the_margin_and_a_worse_one_is_worse():
    y, rng = rows()
    noise = rng.random(len(y))
    weak, strong = noise + 0.3 * y, noise + 1.0 * y
    better = paired_ap_gain(y, weak, strong, resamples=300)
    assert better.estimate == pytest.approx(average_precision_score(y, strong)
                                            - average_precision_score(y, weak))
    assert better.ap_a == pytest.approx(average_precision_score(y, weak))
    assert 0.005 < better.low <= better.estimate <= better.high
    assert better.share_not_above_zero == 0.0 and verdict(better, 0.005) == "better"
    worse = paired_ap_gain(y, strong, weak, resamples=300)
    assert worse.high < 0 and verdict(worse, 0.005) == "worse"


def test_pairing_makes_the_interval_narrower_than_either_ap():
    """Two models that share most of their errors: the gain's spread is far below the spread
    of one AP (what an unpaired comparison would have to beat)."""
    y, rng = rows(n=6000, rate=0.015)
    base = rng.random(len(y)) + 0.6 * y
    a, b = base, base + rng.normal(0, 0.02, len(y))
    g = paired_ap_gain(y, a, b, resamples=300)
    ap_spread = [average_precision(y, a, np.bincount(
        np.r_[rng.choice(np.flatnonzero(y), y.sum()), rng.choice(np.flatnonzero(~y), (~y).sum())],
        minlength=len(y))) for _ in range(100)]
    assert g.se < np.std(ap_spread) / 3


def test_a_wider_confidence_gives_a_wider_interval_and_the_seed_repeats():
    y, rng = rows()
    a, b = rng.random(len(y)) + 0.5 * y, rng.random(len(y)) + 0.55 * y
    narrow = paired_ap_gain(y, a, b, resamples=400, confidence=0.5, seed=1)
    wide = paired_ap_gain(y, a, b, resamples=400, confidence=0.99, seed=1)
    assert wide.low < narrow.low <= narrow.high < wide.high
    assert paired_ap_gain(y, a, b, resamples=400, confidence=0.5, seed=1) == narrow
    assert paired_ap_gain(y, a, b, resamples=400, confidence=0.5, seed=2) != narrow


def test_every_resample_has_the_holdouts_frauds():
    """Stratified: with a single fraud the AP of every resample is still defined."""
    y = np.zeros(300, dtype=bool)
    y[7] = True
    rng = np.random.default_rng(0)
    g = paired_ap_gain(y, rng.random(300), rng.random(300), resamples=100)
    assert np.isfinite([g.low, g.high, g.se]).all()


def test_inputs_are_checked_and_not_modified():
    y, rng = rows(n=200, rate=0.1)
    a, b = rng.random(200), rng.random(200)
    before = (y.copy(), a.copy(), b.copy())
    paired_ap_gain(y, a, b, resamples=20)
    for x, x0 in zip((y, a, b), before):
        np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError, match="both frauds and legitimate"):
        paired_ap_gain(np.zeros(200), a, b)
    with pytest.raises(ValueError, match="row counts differ"):
        paired_ap_gain(y, a[:-1], b)
    with pytest.raises(ValueError, match="confidence"):
        paired_ap_gain(y, a, b, confidence=1.0)
    with pytest.raises(ValueError, match="NaN"):
        paired_ap_gain(y, np.full(200, np.nan), b)


def test_to_dict_round_trips():
    g = paired_ap_gain(*rows(n=300, rate=0.1)[:1], np.linspace(0, 1, 300), np.linspace(1, 0, 300),
                       resamples=20)
    assert GainInterval(**g.to_dict()) == g


def test_the_mean_gain_of_several_models_is_scored_on_each_same_resample():
    rng = np.random.default_rng(3)
    y = rng.random(3000) < 0.05
    a = y * 0.5 + rng.random(3000)
    b1, b2 = y * 1.0 + rng.random(3000), y * 2.0 + rng.random(3000)
    one = paired_ap_gain(y, a, b1, resamples=200, seed=4)
    assert paired_mean_ap_gain(y, a, [b1], resamples=200, seed=4) == one  # the same test
    both = paired_mean_ap_gain(y, a, [b1, b2], resamples=200, seed=4)
    two = paired_ap_gain(y, a, b2, resamples=200, seed=4)
    assert both.ap_b == pytest.approx((one.ap_b + two.ap_b) / 2)
    assert both.estimate == pytest.approx((one.estimate + two.estimate) / 2)
    # Each resample's gain is the mean of both models' weighted AP minus a's, all on the same
    # draw: recomputed here with sklearn's AP on the same stratified draws.
    small = paired_mean_ap_gain(y, a, [b1, b2], resamples=40, seed=5, confidence=0.8)
    draw = np.random.default_rng(5)
    frauds, legit = np.flatnonzero(y), np.flatnonzero(~y)
    gains = []
    for _ in range(40):
        idx = np.concatenate([frauds[draw.integers(0, len(frauds), len(frauds))],
                              legit[draw.integers(0, len(legit), len(legit))]])
        w = np.bincount(idx, minlength=len(y))
        ap = lambda s: average_precision_score(y, s, sample_weight=w)  # noqa: E731
        gains.append((ap(b1) + ap(b2)) / 2 - ap(a))
    assert small.low == pytest.approx(np.quantile(gains, 0.1))
    assert small.high == pytest.approx(np.quantile(gains, 0.9))
    with pytest.raises(ValueError, match="no model"):
        paired_mean_ap_gain(y, a, [])
