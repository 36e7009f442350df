"""Prequential replay: score each transaction, then learn its label when it would arrive live.

The offline twin of the worker's score / label-join loop, for choosing and checking the online
learner on simulated streams without Kafka. Transactions are scored in event-time order in
micro-batches; a label is learned only once event time has passed the moment it becomes
known, so the learner never sees a label earlier than it would live:

* ``"all"``: every transaction's label arrives ``delay_s`` after it;
* ``"fraud_only"``: only frauds are labelled, ``delay_s`` after the transaction; a
  transaction with no fraud label is learned as legitimate once the *label* watermark of its
  partition (the newest fraud label seen there) has passed its ``ts + maturity_s``, as
  stream/joiner.py does. With ``partitions`` > 1 cards are spread over that many partitions
  (``card_ids`` needed), and a partition whose frauds are rare matures its legitimate rows late.

The scores, given before any label of their transaction was learned, are what the
prequential metrics are computed on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .online import OnlineLearner

__all__ = ["PrequentialRun", "prequential_replay"]

LabelMode = Literal["all", "fraud_only"]


@dataclass(frozen=True)
class PrequentialRun:
    """Scores given live and what the replay cost."""

    scores: np.ndarray  # per row of the input, in its order
    learned: int  # labels learned
    score_seconds: float  # wall time spent in predict_proba_many
    learn_seconds: float  # wall time spent in learn_one
    first_label_ts: float = float("inf")  # event time the first label arrives (inf: none does)


def prequential_replay(
    features: pd.DataFrame,
    ts: np.ndarray,
    is_fraud: np.ndarray,
    names: Sequence[str],
    learner: OnlineLearner,
    delay_s: float,
    label_mode: LabelMode = "all",
    maturity_s: float | None = None,
    micro_batch: int = 200,
    clock: Callable[[], float] | None = None,
    partitions: int = 1,
    card_ids: Sequence[str] | None = None,
) -> PrequentialRun:
    """Replay rows (any order; replayed by ``ts``) through ``learner``; see the module doc.

    ``features`` holds at least the columns ``names``, row-aligned with ``ts`` and
    ``is_fraud``. A micro-batch holds at most ``micro_batch`` transactions and never spans a
    label that becomes known between them.
    """
    import time

    clock = clock or time.perf_counter
    if label_mode not in ("all", "fraud_only"):
        raise ValueError(f"label_mode must be 'all' or 'fraud_only', not {label_mode!r}")
    ts = np.asarray(ts, dtype=np.float64)
    y = np.asarray(is_fraud, dtype=bool)
    maturity = delay_s if maturity_s is None else maturity_s
    order = np.argsort(ts, kind="stable")
    rows = features[list(names)].to_numpy(dtype=np.float64)
    dicts = [dict(zip(names, r)) for r in rows.tolist()]

    # When each label is learned, in event time; np.inf: never within the stream.
    known = np.full(len(ts), np.inf)
    if label_mode == "all":
        known[:] = ts + delay_s
    else:
        frauds = np.flatnonzero(y)
        known[frauds] = ts[frauds] + delay_s
        part = _partitions(card_ids, len(ts), partitions)
        # The label watermark moves only with fraud labels: a legitimate row matures at the
        # first fraud label of its partition whose time is at or past its ts + maturity.
        for p in np.unique(part):
            fraud_label_ts = np.sort(known[frauds[part[frauds] == p]])
            legit = np.flatnonzero(~y & (part == p))
            k = np.searchsorted(fraud_label_ts, ts[legit] + maturity, side="left")
            ok = k < len(fraud_label_ts)
            known[legit[ok]] = fraud_label_ts[k[ok]]
    label_order = np.argsort(known, kind="stable")
    label_order = label_order[np.isfinite(known[label_order])]

    scores = np.full(len(ts), np.nan)
    score_s = learn_s = 0.0
    learned = 0
    j = 0  # next label to learn
    i = 0
    n = len(order)
    while i < n:
        now = ts[order[i]]
        # Labels known at or before this transaction's time are learned first.
        t0 = clock()
        while j < len(label_order) and known[label_order[j]] <= now:
            r = label_order[j]
            learner.learn_one(dicts[r], bool(y[r]))
            learned += 1
            j += 1
        learn_s += clock() - t0
        next_label = known[label_order[j]] if j < len(label_order) else np.inf
        end = min(n, i + micro_batch)
        # next_label > now (all known labels are learned), so the micro-batch is never empty.
        end = i + max(1, int(np.searchsorted(ts[order[i:end]], next_label, side="left")))
        idx = order[i:end]
        t0 = clock()
        scores[idx] = learner.predict_proba_many([dicts[r] for r in idx])
        score_s += clock() - t0
        i = end
    first = float(known[label_order[0]]) if len(label_order) else float("inf")
    return PrequentialRun(scores, learned, score_s, learn_s, first)


def _partitions(card_ids: Sequence[str] | None, n: int, partitions: int) -> np.ndarray:
    """Each row's partition: Kafka's default partitioner on the card id (as the producers)."""
    if partitions <= 1:
        return np.zeros(n, dtype=np.int64)
    if card_ids is None:
        raise ValueError("partitions > 1 needs card_ids")
    from kafka.partitioner.default import murmur2

    codes, uniques = pd.factorize(pd.Series(card_ids))
    per_card = np.array([(murmur2(str(c).encode("utf-8")) & 0x7FFFFFFF) % partitions
                         for c in uniques], dtype=np.int64)
    return per_card[codes]
