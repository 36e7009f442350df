"""Whether a challenger replaces the champion, from their paired AP gain on the holdout.

While the champion is *fresh*, the burden of proof is on the challenger: it is promoted only
when the lower bound of its gain clears the margin; a refresh that cannot tell them apart
keeps the champion and says so.

Optionally (``stale_after_days`` > 0; off by default), once the champion is *stale* (trained
on data ending ``stale_after_days`` or more before the challenger's) the burden moves to the
champion: the challenger is promoted unless the champion is shown better (the gain's upper
bound below zero, the verdict ``worse``). The idea: the holdout cannot see what fresher data
is worth, and a champion never shown worse is otherwise kept for ever. Measured with
``fraudstream evaluate-promotion`` (2026-12-04, 10 cycles every 3 days, 14 days): agreement
with the 5-seed later-week reference 8/9 vs 6/9 without it (handbook mix, seed 0), 5/9 vs
5/9 (extended, seed 0), 7/9 vs 8/9 (handbook, seed 1; the out-of-sample run, since 14 days
was picked on seed 0's runs). 20/27 against 19/27: no evidence it decides better, and it
promotes challengers that are not shown better, so it is off unless an operator bounds
champion age on purpose.

Pure: numbers in, a :class:`Decision` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .days import DAY_S
from .paired import GainInterval, verdict

__all__ = ["Decision", "decide", "staleness_days"]


@dataclass(frozen=True)
class Decision:
    promote: bool
    outcome: str      # better | worse | indistinguishable (models.paired.verdict)
    reason: str
    stale: bool       # the champion was stale, so a tie went to the challenger


def staleness_days(challenger_trained_until: float,
                   champion_trained_until: float | None) -> float | None:
    """How many days older the champion's training data ends than the challenger's (None:
    unknown, e.g. a champion from a registry that did not record it)."""
    if champion_trained_until is None or not math.isfinite(champion_trained_until):
        return None
    return (challenger_trained_until - champion_trained_until) / DAY_S


def decide(gain: GainInterval, margin: float, *, staleness: float | None = None,
           stale_after_days: float = 0.0) -> Decision:
    """The decision and its reason (see the module doc). ``stale_after_days`` <= 0: a champion
    never goes stale."""
    outcome = verdict(gain, margin)
    interval = f"gain {gain.describe()}"
    stale = (staleness is not None and stale_after_days > 0
             and staleness >= stale_after_days)
    if stale:
        promote = outcome != "worse"
        reason = (f"the champion's training data ends {staleness:.1f} days before the "
                  f"challenger's (stale after {stale_after_days:g}): {interval}, "
                  + ("the champion is not shown better: the fresher challenger replaces it"
                     if promote else "the champion is better: keeping it"))
        return Decision(promote, outcome, reason, True)
    promote = gain.low > margin
    reason = f"{interval}, lower bound {'>' if promote else '<='} margin {margin:g}"
    if not promote:
        reason += (": the champion is better" if outcome == "worse" else
                   ": cannot tell the challenger from the champion, keeping the champion")
    return Decision(promote, outcome, reason, False)
