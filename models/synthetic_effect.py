"""Did the synthetic frauds published to the online learners raise their precision?

The trainer publishes a sample of a cycle's synthetic frauds for the workers' online
learners, and records in that version's metadata how many and at which event time. The
window's examples carry the score the online learner gave each transaction when it was
scored, so the learner's prequential average precision can be compared on equal event-time
spans before and after that publication: the span after it runs to the window's newest
event, the span before is as long.

Pure: a :class:`~.window.WindowData` and the publication in, a dict out.

>>> import numpy as np
>>> from fraudstream.models.window import WindowData
>>> data = WindowData(["x"], np.zeros((6, 1)), np.array([0, 1, 0, 1, 0, 1]),
...                   np.arange(6.0) * 86_400, np.array(["c"] * 6, dtype=object),
...                   np.array(list("abcdef"), dtype=object),
...                   np.array([.6, .1, .4, .9, .2, .8]))
>>> effect = synthetic_effect(data, "v0002", 10, at_event_ts=2.5 * 86_400)
>>> effect["raised"], effect["after"]["n"], effect["before"]["n"]
(True, 3, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from .days import DAY_S
from .formats import fmt_number
from .window import WindowData

__all__ = ["synthetic_effect"]



def synthetic_effect(data: WindowData, published_by: str, n_published: int,
                     at_event_ts: float) -> dict[str, Any]:
    """The online learner's prequential AP on each side of a publication of synthetic frauds.

    ``raised`` is None while either side has no AP (no fraud, or nothing but frauds, among
    its scored transactions); ``summary`` is one line for the log.
    """
    at = float(at_event_ts)
    span = float(data.ts.max()) - at if len(data) else 0.0
    known = ~np.isnan(data.score_online)
    after = known & (data.ts > at)
    before = known & (data.ts <= at) & (data.ts > at - span)
    sides = {"before": _ap(data, before), "after": _ap(data, after)}
    ap_before, ap_after = sides["before"]["average_precision"], sides["after"]["average_precision"]
    raised = None if ap_before is None or ap_after is None else ap_after > ap_before
    verdict = "raised" if raised else "not raised" if raised is False else "not enough data yet"
    summary = (f"{n_published} published by {published_by}; prequential AP before "
               f"{fmt_number(ap_before, 4)} ({sides['before']['n']} tx), after "
               f"{fmt_number(ap_after, 4)} ({sides['after']['n']} tx): {verdict}")
    return {"published_by": published_by, "n_published": n_published, "at_event_ts": at,
            "span_days": span / DAY_S, **sides, "raised": raised, "summary": summary}


def _ap(data: WindowData, mask: np.ndarray) -> dict[str, Any]:
    y, score = data.y[mask], data.score_online[mask]
    ap = float(average_precision_score(y, score)) if 0 < y.sum() < len(y) else None
    return {"average_precision": ap, "n": int(mask.sum()), "frauds": int(y.sum())}
