"""The scripted promotion study: cycles replayed, the reference on later rows only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fraudstream.models.batch import XGBParams
from fraudstream.models.days import DAY_S
from fraudstream.models.promotion_study import (
    PromotionStudyConfig, expected_oracle_agreement, format_cycles, promotion_study,
)
from fraudstream.models.refresh import RefreshConfig

NAMES = ["a", "b", "c"]
STUDY = PromotionStudyConfig(cycles=3, every_days=2.0, window_days=10.0, horizon_days=3.0,
                             reference_seeds=2, burn_in_days=1.0)


def stream(days: float, n: int = 6000, seed: int = 0):
    """Rows over ``days`` whose fraud odds grow with column a, ~8 % frauds."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * X[:, 0] - 4.0)))).astype(np.int64)
    ts = 1_700_000_000 + rng.random(n) * days * DAY_S
    card = np.array([f"c{i % 300}" for i in range(n)], dtype=object)
    return X, y, ts, card, np.array([str(i) for i in range(n)], dtype=object)


def config(**changes) -> RefreshConfig:
    # No synthesis (fast); small forests; a holdout of 2 days after a 1-day gap.
    return RefreshConfig(holdout_days=2.0, gap_days=1.0, synthetic_ratio=0.0,
                         bootstrap_resamples=100, xgb=XGBParams(n_estimators=20, max_depth=3),
                         **changes)


def test_each_cycle_after_the_first_is_compared_with_its_reference_on_later_rows():
    X, y, ts, card, tx = stream(STUDY.days_needed() + 0.5)
    result = promotion_study(X, y, ts, card, tx, NAMES, config(), STUDY)
    cycles = result["cycles"]
    assert [c["cycle"] for c in cycles] == [1, 2, 3]
    assert cycles[0]["decision"] == "promote" and not cycles[0]["counted"]  # no champion yet
    t0 = ts.min() + (STUDY.burn_in_days + STUDY.window_days) * DAY_S
    for k, c in enumerate(cycles):
        t = t0 + k * STUDY.every_days * DAY_S
        assert c["frauds"] == int(y[(ts >= t - STUDY.window_days * DAY_S) & (ts < t)].sum())
        assert c["later_frauds"] == int(y[(ts >= t) & (ts < t + STUDY.horizon_days * DAY_S)].sum())
    for c in cycles[1:]:
        later = c["later"]
        assert c["counted"] and len(later["reference_gains"]) == STUDY.reference_seeds
        assert later["reference_mean_gain"] == pytest.approx(np.mean(later["reference_gains"]))
        assert later["reference"] == ("promote" if later["reference_mean_gain"] > 0.005 else "keep")
        assert c["agrees"] == (later["reference"] == c["decision"])
        # The later week's own noise: the mean gain's paired interval, decisive when it lies
        # wholly on one side of the margin.
        r = later["reference_interval"]
        assert r["estimate"] == pytest.approx(later["reference_mean_gain"])
        assert r["low"] <= r["estimate"] <= r["high"] and r["confidence"] == 0.9
        assert later["reference_decisive"] == (r["low"] > 0.005 or r["high"] < 0.005)
    a = result["agreement"]
    assert a["counted"] == 2 and a["agree"] == sum(c["agrees"] for c in cycles[1:])
    decisive = [c for c in cycles[1:] if c["later"]["reference_decisive"]]
    assert a["decisive"] == len(decisive)
    assert a["decisive_agree"] == sum(c["agrees"] for c in decisive)
    assert a["oracle_expected"] == pytest.approx(expected_oracle_agreement(
        [c["later"]["reference_mean_gain"] for c in cycles[1:]],
        [c["later"]["reference_interval"]["se"] for c in cycles[1:]], 0.005))
    assert 1.0 <= a["oracle_expected"] <= 2.0  # each cycle's share is between 1/2 and 1
    text = format_cycles(result)
    assert "agreement: " in text and f"about {a['oracle_expected']:.1f}/2 against" in text


def test_an_oracle_agrees_with_a_noisy_reference_only_as_often_as_its_noise_allows():
    # far from the margin: certain; on it: a coin; one se away: Phi(1); no noise: certain
    assert expected_oracle_agreement([0.5], [0.01], 0.005) == pytest.approx(1.0)
    assert expected_oracle_agreement([0.005], [0.01], 0.005) == pytest.approx(0.5)
    assert expected_oracle_agreement([0.015, -0.005], [0.01, 0.01], 0.005) == \
        pytest.approx(2 * 0.8413447, abs=1e-6)
    assert expected_oracle_agreement([0.005], [0.0], 0.005) == 1.0
    with pytest.raises(ValueError):
        expected_oracle_agreement([0.1, 0.2], [0.01], 0.005)


@pytest.mark.parametrize("margin, decision", [(-1.0, "promote"), (1.0, "keep")])
def test_the_reference_has_its_own_margin(margin, decision):
    """A margin no gain can miss (or reach): with the same margin for the reference every
    cycle agrees; the reference's own margin judges the trainer's rule apart from it."""
    X, y, ts, card, tx = stream(STUDY.days_needed() + 0.5, seed=1)
    same = replace(STUDY, reference_margin=margin)
    result = promotion_study(X, y, ts, card, tx, NAMES, config(promote_margin=margin), same)
    counted = [c for c in result["cycles"] if c["counted"]]
    assert counted and all(c["decision"] == decision for c in counted)
    assert all(c["later"]["reference"] == decision for c in counted)
    assert result["agreement"]["agree"] == result["agreement"]["counted"] == len(counted)
    apart = promotion_study(X, y, ts, card, tx, NAMES, config(promote_margin=margin),
                            replace(STUDY, reference_margin=-margin))
    assert all(c["later"]["reference"] != decision for c in apart["cycles"] if c["counted"])
    assert apart["agreement"]["agree"] == 0


def test_a_stream_too_short_for_the_cycles_is_refused():
    X, y, ts, card, tx = stream(STUDY.days_needed() - 2)
    with pytest.raises(ValueError, match="cycles need"):
        promotion_study(X, y, ts, card, tx, NAMES, config(), STUDY)
