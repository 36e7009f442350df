"""Whether a challenger replaces the champion, from their paired AP gain on the holdout.

While the champion is *fresh*, the burden of proof is on the challenger: it is promoted only
when the lower bound of its gain clears the margin; a refresh that cannot tell them apart
keeps the champion and says so.

Once the champion is *stale* (trained on data ending ``stale_after_days`` or more before the
challenger's), the burden moves to the champion: the challenger is promoted unless the
champion is shown better (the gain's upper bound below zero, the verdict ``worse``). Why:
the holdout cannot see the value of fresher data. Both models are judged on the same days,
which lie after both training periods, while the champion goes on scoring days further and
further from its own. In three scripted promotion runs (``fraudstream evaluate-promotion``,
2026-12-04) the champion was 15 or more days staler than the challenger in 8 cycles: in all
8 the challengers beat it on the week after the cycle (mean of 5 seeds), and its holdout told
them apart in 2. And a champion that is never shown worse would otherwise be kept for ever.

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
    interval = (f"gain {gain.estimate:+.4f} [{gain.confidence:.0%} interval {gain.low:+.4f}, "
                f"{gain.high:+.4f}]")
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
