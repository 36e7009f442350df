"""The promotion rule: the challenger proves itself against a fresh champion; a stale champion
must prove itself against the challenger."""

import math

import pytest

from fraudstream.models.days import DAY_S
from fraudstream.models.paired import GainInterval
from fraudstream.models.promotion_rule import decide, staleness_days

MARGIN = 0.005


def gain(low, high, estimate=None):
    estimate = (low + high) / 2 if estimate is None else estimate
    return GainInterval(estimate, low, high, se=0.01, confidence=0.9, resamples=1000,
                        share_not_above_zero=0.5, ap_a=0.5, ap_b=0.5 + estimate)


BETTER, TIE, WORSE = gain(0.01, 0.05), gain(-0.02, 0.03), gain(-0.05, -0.001)


@pytest.mark.parametrize("staleness", [None, 0.0, 3.0, 13.999])
def test_a_fresh_champion_is_replaced_only_by_a_proven_challenger(staleness):
    outcomes = {name: decide(g, MARGIN, staleness=staleness, stale_after_days=14)
                for name, g in (("better", BETTER), ("tie", TIE), ("worse", WORSE))}
    assert [d.promote for d in outcomes.values()] == [True, False, False]
    assert [d.outcome for d in outcomes.values()] == ["better", "indistinguishable", "worse"]
    assert not any(d.stale for d in outcomes.values())
    assert "lower bound > margin 0.005" in outcomes["better"].reason
    assert "cannot tell the challenger from the champion" in outcomes["tie"].reason
    assert outcomes["worse"].reason.endswith("the champion is better")


@pytest.mark.parametrize("staleness", [14.0, 15.0, 90.0])
def test_a_stale_champion_keeps_its_place_only_when_shown_better(staleness):
    tie = decide(TIE, MARGIN, staleness=staleness, stale_after_days=14)
    worse = decide(WORSE, MARGIN, staleness=staleness, stale_after_days=14)
    better = decide(BETTER, MARGIN, staleness=staleness, stale_after_days=14)
    assert (tie.promote, tie.stale, tie.outcome) == (True, True, "indistinguishable")
    assert (worse.promote, worse.stale, worse.outcome) == (False, True, "worse")
    assert better.promote and better.stale
    assert f"ends {staleness:.1f} days before the challenger's (stale after 14)" in tie.reason
    assert "the fresher challenger replaces it" in tie.reason
    assert "the champion is better: keeping it" in worse.reason
    # The interval is in the reason, as in the fresh rule.
    assert "[90% interval -0.0200, +0.0300]" in tie.reason


def test_a_just_not_negative_upper_bound_is_a_tie():
    """The stale rule keeps the champion only when the whole interval is below zero."""
    assert decide(gain(-0.03, 0.0), MARGIN, staleness=20, stale_after_days=14).promote
    assert not decide(gain(-0.03, -1e-9), MARGIN, staleness=20, stale_after_days=14).promote


@pytest.mark.parametrize("off", [0.0, -1.0])
def test_staleness_off_never_makes_a_champion_stale(off):
    d = decide(TIE, MARGIN, staleness=1000.0, stale_after_days=off)
    assert not d.promote and not d.stale


def test_staleness_days_from_training_ends():
    assert staleness_days(100 * DAY_S, 85 * DAY_S) == pytest.approx(15.0)
    assert staleness_days(100 * DAY_S, 100 * DAY_S) == 0.0
    assert staleness_days(100 * DAY_S, None) is None
    assert staleness_days(100 * DAY_S, math.nan) is None
    # A champion trained on later data than the challenger (a rollback) is not stale.
    assert staleness_days(100 * DAY_S, 110 * DAY_S) == pytest.approx(-10.0)
    assert not decide(TIE, MARGIN, staleness=-10.0, stale_after_days=14).promote
