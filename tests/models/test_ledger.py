"""The augmentation ledger: its interval, when it switches synthesis off, when it re-tests."""

import math

import pytest

from fraudstream.models.ledger import (
    LedgerConfig, advance, empty_state, plan, state_from, summarize)

CONFIG = LedgerConfig(cycles=4, min_cycles=2, retest_every=3, confidence=0.9)


def entry(gain, se=0.01, half=0.02):
    return {"estimate": gain, "low": gain - half, "high": gain + half, "se": se, "ratio": 1.0,
            "ratio_used": 1.0, "at": 0.0, "ap_a": 0.5, "verdict": "better"}


def run(gains, config=CONFIG):
    """Feed the plan's decision back, as the trainer does; returns (plans, final state)."""
    state, plans = empty_state(), []
    for gain in gains:
        p = plan(state, config)
        plans.append(p)
        state = advance(state, entry(gain) if p["on"] else None, p["on"], config)
    return plans, state


def test_an_empty_ledger_has_no_gain_and_keeps_synthesis_on():
    s = summarize([])
    assert s["n"] == 0 and math.isnan(s["gain"]) and math.isnan(s["low"])
    p = plan(empty_state(), CONFIG)
    assert p["on"] and p["reason"] == "gathering evidence (0/2 measured cycles)"


def test_one_cycle_is_its_own_bootstrap_interval():
    s = summarize([entry(0.03, half=0.05)])
    assert (s["n"], s["gain"], s["low"], s["high"]) == (1, 0.03, pytest.approx(-0.02), 0.08)


def test_the_interval_is_the_wider_of_within_and_between_cycles():
    # equal gains, large bootstrap errors: the within-cycle part decides
    calm = summarize([entry(0.02, se=0.02)] * 4)
    assert calm["method"] == "within cycles"
    # no credit for repeating a holdout: the mean's error is one cycle's, not a quarter of it
    assert calm["high"] - calm["gain"] == pytest.approx(1.6449 * 0.02, rel=1e-3)
    # scattered gains, tiny bootstrap errors: the spread between cycles decides
    scattered = summarize([entry(g, se=1e-4) for g in (-0.05, 0.05, -0.04, 0.06)])
    assert scattered["method"] == "between cycles" and scattered["low"] < 0 < scattered["high"]
    assert scattered["gain"] == pytest.approx(0.005)


def test_a_steady_gain_keeps_synthesis_on():
    plans, state = run([0.03, 0.04, 0.03, 0.05, 0.04, 0.03])
    assert all(p["on"] for p in plans)
    assert plans[-1]["reason"].startswith("synthesis earns its place: ledger gain +0.0")
    assert len(state["entries"]) == 4 and state["off_cycles"] == 0  # the last 4 kept


@pytest.mark.parametrize("gains", [[0.0] * 9, [-0.02] * 9, [0.01, -0.01] * 5])
def test_no_gain_switches_synthesis_off_and_re_tests_every_k_cycles(gains):
    plans, _ = run(gains)
    on = [p["on"] for p in plans]
    # two cycles to gather evidence, then off, off, re-test, off, off, re-test, ...
    assert on[:2] == [True, True]
    assert on[2:9] == [False, False, True, False, False, True, False][: len(on) - 2]
    assert "synthesis off: ledger gain" in plans[2]["reason"] and "re-test in 2 cycle(s)" in plans[2]["reason"]
    assert "shows no gain above 0" in plans[2]["reason"]
    assert plans[2]["retest_in"] == 2 and plans[3]["retest_in"] == 1
    assert plans[4]["reason"].startswith("re-test after 2 cycle(s) off")


def test_a_gain_found_by_re_tests_turns_synthesis_back_on():
    config = LedgerConfig(cycles=3, min_cycles=2, retest_every=2)
    plans, state = run([0.0, 0.0] + [0.05] * 12, config)
    on = [p["on"] for p in plans]
    assert on[2] is False and on[-1] is True
    assert all(on[-3:]) and summarize(state["entries"])["low"] > 0


def test_cycles_that_measure_nothing_do_not_enter_the_ledger():
    state = advance(empty_state(), None, True, CONFIG)
    assert state == {"entries": [], "off_cycles": 0}
    state = advance(state, entry(0.01), True, CONFIG)
    assert state["entries"] == [{k: entry(0.01)[k] for k in
                                 ("estimate", "low", "high", "se", "ratio", "ratio_used", "at")}]


def test_the_state_survives_metadata_and_refuses_garbage():
    _, state = run([0.0, 0.0, 0.0])
    assert state_from({"ledger": {"state": state}}) == state
    assert state_from(None) == empty_state()
    assert state_from({"ledger": "nonsense"}) == empty_state()
    assert state_from({"ledger": {"state": {"entries": 3, "off_cycles": 1}}}) == empty_state()
    # a stored entry that lost its numbers (strict JSON writes NaN as null) is dropped
    broken = {"entries": [entry(0.01), {**entry(0.02), "se": None}], "off_cycles": 1}
    assert state_from({"ledger": {"state": broken}})["entries"] == [entry(0.01)]


def test_the_config_is_checked():
    with pytest.raises(ValueError, match="cannot exceed"):
        LedgerConfig(cycles=2, min_cycles=3)
    with pytest.raises(ValueError, match=">= 1"):
        LedgerConfig(retest_every=0)


def test_the_default_waits_for_five_measurements():
    """Three cycles each clearly positive on its own: too few to switch synthesis off."""
    config = LedgerConfig()
    assert config.min_cycles == 5
    state = empty_state()
    for gain in (0.10, 0.03, 0.03):
        state = advance(state, entry(gain, se=0.015), True, config)
    assert plan(state, config)["on"] is True
    assert plan(state, config)["reason"].startswith("gathering evidence (3/5 measured cycles)")
