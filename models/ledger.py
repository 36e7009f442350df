"""The running augmentation ledger: does synthesis earn its place, across the last cycles?

One cycle's holdout says little (its gain interval is wide); the ledger keeps the synthetic
rows' AP gain of the last ``cycles`` cycles that measured it (``report["comparisons"]
["synthetic"]`` of :func:`~.refresh.run_cycle`) and summarises them with an interval. While
that interval's lower bound does not clear zero after ``min_cycles`` measurements, synthesis
is switched off, and switched on again for one cycle every ``retest_every`` cycles, so a
gain that appears later (more frauds, a new fraud pattern) is found.

The interval of the mean gain is the wider of two, because consecutive holdouts overlap (a
trainer every 10 minutes with a 7-day holdout scores nearly the same rows each cycle) and the
cycles are not independent measurements:

* within cycles: ``z * mean(se_i)`` from each cycle's bootstrap standard error, what the
  mean's error is when the holdouts are the same rows (no credit for repeating them);
* between cycles: ``t_{k-1} * sd(gains) / sqrt(k)`` (from 2 measurements on), the gain
  moving from one period to the next.

With one measurement it is that cycle's own bootstrap interval.

The state travels in each registry version's metadata (``ledger``), so it survives restarts
and pruning: a cycle reads the newest version's state, plans, and writes the next one. Pure:
dicts in, dicts out.

>>> config = LedgerConfig(cycles=4, min_cycles=2, retest_every=3)
>>> state = empty_state()
>>> plan(state, config)["on"]
True
>>> for gain in (-0.01, 0.0):
...     state = advance(state, {"estimate": gain, "low": gain - 0.02, "high": gain + 0.02,
...                             "se": 0.01}, True, config)
>>> p = plan(state, config)
>>> p["on"], p["retest_in"]
(False, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats

from .formats import jsonable

__all__ = ["LedgerConfig", "advance", "after_cycle", "empty_state", "plan", "state_from",
           "summarize"]

_ENTRY_KEYS = ("estimate", "low", "high", "se", "ratio", "ratio_used", "at")


@dataclass(frozen=True)
class LedgerConfig:
    cycles: int = 8            # measured cycles kept
    # Measurements before the ledger may switch synthesis off. Measured: with 3, the t
    # quantile of 2 degrees of freedom (2.92 at 90 %) switched synthesis off after three
    # cycles whose own intervals were all above 0 (+0.10, +0.03, +0.03).
    min_cycles: int = 5
    retest_every: int = 5      # while off, every this many-th cycle runs synthesis again
    confidence: float = 0.9

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.min_cycles < 1 or self.retest_every < 1:
            raise ValueError("cycles, min_cycles and retest_every must be >= 1")
        if self.min_cycles > self.cycles:
            raise ValueError(f"min_cycles ({self.min_cycles}) cannot exceed cycles ({self.cycles})")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


def empty_state() -> dict[str, Any]:
    """No measurements, synthesis never off."""
    return {"entries": [], "off_cycles": 0}


def summarize(entries: list[dict[str, Any]], confidence: float = 0.9) -> dict[str, Any]:
    """Mean gain of ``entries`` with its interval (see the module docstring); NaN when empty."""
    k = len(entries)
    if k == 0:
        return {"n": 0, "gain": math.nan, "low": math.nan, "high": math.nan, "method": "none"}
    gains = np.array([e["estimate"] for e in entries], dtype=np.float64)
    mean = float(gains.mean())
    if k == 1:
        return {"n": 1, "gain": mean, "low": float(entries[0]["low"]),
                "high": float(entries[0]["high"]), "method": "one cycle's bootstrap"}
    ses = np.array([e["se"] for e in entries], dtype=np.float64)
    within = NormalDist().inv_cdf(0.5 + confidence / 2) * float(ses.mean())
    between = float(stats.t.ppf(0.5 + confidence / 2, k - 1) * gains.std(ddof=1) / math.sqrt(k))
    half = max(within, between)
    return {"n": k, "gain": mean, "low": mean - half, "high": mean + half,
            "method": "within cycles" if within >= between else "between cycles"}


def plan(state: dict[str, Any], config: LedgerConfig) -> dict[str, Any]:
    """Should this cycle synthesise? ``{"on", "reason", "retest_in", "summary"}``."""
    summary = summarize(state["entries"], config.confidence)
    n = summary["n"]
    told = (f"ledger gain {summary['gain']:+.4f} [{config.confidence:.0%} interval "
            f"{summary['low']:+.4f}, {summary['high']:+.4f}] over {n} cycle(s)") if n else ""
    out: dict[str, Any] = {"summary": summary, "retest_in": None}
    if n < config.min_cycles:
        out.update(on=True, reason=f"gathering evidence ({n}/{config.min_cycles} measured cycles)"
                   + (f": {told}" if told else ""))
    elif summary["low"] > 0:
        out.update(on=True, reason=f"synthesis earns its place: {told}")
    elif state["off_cycles"] + 1 >= config.retest_every:
        out.update(on=True, reason=f"re-test after {state['off_cycles']} cycle(s) off: {told} "
                                   "shows no gain above 0")
    else:
        left = config.retest_every - state["off_cycles"] - 1
        out.update(on=False, retest_in=left,
                   reason=f"synthesis off: {told} shows no gain above 0; re-test in {left} cycle(s)")
    return out


def advance(state: dict[str, Any], entry: dict[str, Any] | None, on: bool,
            config: LedgerConfig) -> dict[str, Any]:
    """The state after a cycle: its measurement (``None``: none, e.g. a rejected synthetic
    set) appended and the oldest dropped; ``off_cycles`` counts cycles run without synthesis
    by the ledger's plan."""
    entries = list(state.get("entries") or [])
    if entry is not None:
        entries.append({k: entry[k] for k in _ENTRY_KEYS if k in entry})
    return {"entries": entries[-config.cycles:],
            "off_cycles": 0 if on else int(state.get("off_cycles", 0)) + 1}


def state_from(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The ledger state stored in a version's metadata, or an empty one (older versions, or
    a state that does not parse: the ledger restarts rather than the trainer failing)."""
    ledger = (metadata or {}).get("ledger") or {}
    state = ledger.get("state") if isinstance(ledger, dict) else None
    try:
        entries = [e for e in state["entries"]
                   if all(isinstance(e.get(k), (int, float)) and math.isfinite(e[k])
                          for k in ("estimate", "low", "high", "se"))]
        return {"entries": entries, "off_cycles": max(0, int(state["off_cycles"]))}
    except (TypeError, KeyError, ValueError, AttributeError):
        return empty_state()


def after_cycle(state: dict[str, Any], report: dict[str, Any], synthesis: dict[str, Any],
                config: LedgerConfig) -> dict[str, Any]:
    """The ledger a cycle leaves in its version's metadata: the state after it (its synthetic
    gain, if measured, stamped with the window's last event time), the summary, and what the
    plan (``synthesis``, from :func:`plan`) decided. NaN becomes None: strict JSON."""
    entry = report["comparisons"]["synthetic"]
    if entry is not None:
        entry = {**entry, "at": report["split"]["window_last_ts"]}
    after = advance(state, entry, synthesis["on"], config)
    return jsonable({"state": after, "summary": summarize(after["entries"], config.confidence),
                     "measured": entry is not None,
                     "synthesis": {"on": synthesis["on"], "reason": synthesis["reason"]}})
