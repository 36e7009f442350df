"""The features over a DataFrame of history, vectorised: the offline (training) path.

Part of :mod:`~.features` (see its docstring for the semantics): :func:`compute_features`
agrees with the live states of :mod:`~.features_state` to 1e-9.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .days import DAY_S
from .features_schema import (
    _CARD_DISTINCT_WINDOWS,
    _CARD_SHORT_WINDOWS,
    _CARD_WINDOWS,
    _MAX_WINDOW_S,
    _MIN_MEAN_AMOUNT,
    _TERMINAL_WINDOWS,
    DEFAULT_FEATURE_SET,
    NIGHT_END_HOUR,
    extra_feature_names,
    feature_names,
)

__all__ = ["compute_features"]


def compute_features(
    df: pd.DataFrame, label_delay_s: float, extra: Sequence[str] = (),
    feature_set: str = DEFAULT_FEATURE_SET,
) -> pd.DataFrame:
    """The same features, computed over a DataFrame of history, vectorised.

    ``df`` has columns ``tx_id``, ``ts`` (epoch seconds), ``card_id``, ``terminal_id``,
    ``amount``, ``is_fraud``, in any row order; each configured extra comes from a
    ``features`` column of dicts (records as on the wire) or else from a column of that
    name. Every fraud is assumed known ``label_delay_s`` after its transaction. Returns
    ``tx_id`` plus :func:`feature_names` ``(extra)`` columns, aligned with ``df``'s rows and
    index. About 2 s for a million rows (handbook set).
    """
    names = feature_names(extra, feature_set)
    ts = df["ts"].to_numpy(dtype=np.float64)
    if not np.isfinite(ts).all():
        raise ValueError("ts must be finite epoch seconds")
    amount = df["amount"].to_numpy(dtype=np.float64)
    is_fraud = df["is_fraud"].to_numpy(dtype=bool)

    cols: dict[str, np.ndarray] = {"amount": amount}
    day = np.floor(ts / DAY_S)
    cols["is_weekend"] = ((day + 3) % 7 >= 5).astype(np.float64)
    cols["is_night"] = ((ts % DAY_S) // 3600.0 < NIGHT_END_HOUR).astype(np.float64)

    card = _GroupedTimes(df["card_id"], ts)
    card_sum = card.prefix_sums(amount)
    card_hi = card.position(card.ts)
    for count_name, mean_name, w in _CARD_WINDOWS:
        lo = card.position(card.ts - w)
        n = card_hi - lo
        total = card.window_sum(card_sum, lo, card_hi)
        cols[count_name] = card.unsort(n.astype(np.float64))
        cols[mean_name] = card.unsort(
            np.divide(total, n, out=np.zeros(len(ts)), where=n > 0)
        )

    term = _GroupedTimes(df["terminal_id"], ts)
    # Integer prefix counts of frauds are exact, so plain differences suffice here.
    fraud_prefix = np.concatenate(([0], np.cumsum(is_fraud[term.order], dtype=np.int64)))
    end = term.ts - label_delay_s
    term_hi = term.position(end)
    for count_name, ratio_name, w in _TERMINAL_WINDOWS:
        lo = term.position(end - w)
        n = term_hi - lo
        frauds = fraud_prefix[term_hi] - fraud_prefix[lo]
        cols[count_name] = term.unsort(n.astype(np.float64))
        cols[ratio_name] = term.unsort(
            np.divide(frauds, n, out=np.zeros(len(ts)), where=n > 0)
        )

    if feature_set == "extended":
        cols.update(_card_recent_columns(card, card_sum, card_hi, amount, df["terminal_id"]))

    for name, col in zip(extra, extra_feature_names(extra)):
        cols[col] = _extra_column(df, name)

    out = pd.DataFrame(cols, index=df.index)
    out.insert(0, "tx_id", df["tx_id"].to_numpy())
    return out[["tx_id", *names]]


def _card_recent_columns(card: _GroupedTimes, card_sum: np.ndarray, hi: np.ndarray,
                         amount: np.ndarray, terminals: pd.Series) -> dict[str, np.ndarray]:
    """The extended set's card columns (original row order), as CardState.recent_features."""
    n_rows = len(hi)
    cols: dict[str, np.ndarray] = {}
    lo_30d = card.position(card.ts - _MAX_WINDOW_S)
    has_prev = hi > lo_30d
    prev_ts = card.ts[np.maximum(hi - 1, 0)]
    cols["card_seconds_since_prev"] = card.unsort(
        np.where(has_prev, card.ts - prev_ts, _MAX_WINDOW_S))
    for count_name, sum_name, w in _CARD_SHORT_WINDOWS:
        lo = card.position(card.ts - w)
        cols[count_name] = card.unsort((hi - lo).astype(np.float64))
        cols[sum_name] = card.unsort(card.window_sum(card_sum, lo, hi))
    n = hi - lo_30d
    mean = np.divide(card.window_sum(card_sum, lo_30d, hi), n, out=np.zeros(n_rows), where=n > 0)
    ratio = amount[card.order] / np.maximum(mean, _MIN_MEAN_AMOUNT)
    cols["card_amount_ratio_30d"] = card.unsort(np.where(n > 0, ratio, 1.0))

    # (card, terminal) pairs: the newest earlier event of the pair gives novelty; the next
    # event of the pair at a later time tells whether an event is its terminal's last one
    # before a given time, which is what distinct counts need.
    term_codes, _ = pd.factorize(terminals, use_na_sentinel=False)
    card_codes = card.unsort(card.codes)
    pair_codes, _ = pd.factorize(card_codes.astype(np.int64) * (int(term_codes.max()) + 1)
                                 + term_codes)
    ts = card.unsort(card.ts)
    pair = _GroupedTimes(pd.Series(pair_codes), ts)
    p_lo = pair.position(pair.ts)  # first event of the pair at this time
    p_prev_ts = pair.ts[np.maximum(p_lo - 1, 0)]
    seen = (p_lo > pair.group_start) & (p_prev_ts >= pair.ts - _MAX_WINDOW_S)
    cols["card_terminal_new_30d"] = pair.unsort(np.where(seen, 0.0, 1.0))
    after = np.searchsorted(pair._keys, pair._keys, side="right")  # first event at a later time
    same_pair = np.zeros(len(after), dtype=bool)
    inside = after < len(after)
    same_pair[inside] = pair.codes[after[inside]] == pair.codes[inside]
    next_ts = np.where(same_pair, pair.ts[np.minimum(after, len(after) - 1)], np.inf)
    # Of several events of a pair at one time, the last stands for them all.
    stands = pair.unsort(np.arange(len(after)) == after - 1)[card.order]
    next_ts = pair.unsort(next_ts)[card.order]
    for name, w in _CARD_DISTINCT_WINDOWS:
        lo = card.position(card.ts - w)
        cols[name] = card.unsort(
            _count_last_before(lo, hi, stands, next_ts, card.ts))
    return cols


def _count_last_before(lo: np.ndarray, hi: np.ndarray, stands: np.ndarray,
                       next_ts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Per sorted row i: events j in ``[lo[i], hi[i])`` that stand for their (pair, time) and
    whose pair has no event in ``(ts[j], ts[i])``: the distinct terminals of the window.

    One vectorised pass per position back from ``hi``: as many passes as the busiest window
    holds events (a handful for the 1-hour and 1-day windows of real cards).
    """
    counts = np.zeros(len(lo), dtype=np.float64)
    rows = np.flatnonzero(hi > lo)
    k = 1
    while len(rows):
        j = hi[rows] - k
        counts[rows] += stands[j] & (next_ts[j] >= ts[rows])
        k += 1
        rows = rows[hi[rows] - k >= lo[rows]]
    return counts


class _GroupedTimes:
    """Events sorted by (group, ts), with exact vectorised "position of (group, t)" queries.

    Everything is computed in this sorted order and scattered back with :meth:`unsort`.
    The sort key is a complex number ``group_code + 1j * ts``: numpy orders complex values
    lexicographically (real part, then imaginary), so one ``searchsorted`` answers every row
    at once, without a per-group loop and without folding ``ts`` into a single float that
    would round away sub-second boundaries. Queries made row by row in sorted order are
    themselves sorted, which keeps ``searchsorted`` cache-friendly (~20x faster on 1M rows).
    """

    def __init__(self, groups: pd.Series, ts: np.ndarray) -> None:
        codes, _ = pd.factorize(groups, use_na_sentinel=False)
        self.order = np.lexsort((ts, codes))  # stable
        self.codes = codes[self.order]
        self.ts = ts[self.order]
        self._real = self.codes.astype(np.float64)  # exact: codes < 2**53
        self._keys = self._real + 1j * self.ts
        # Sorted index of the first row of each row's group.
        is_start = np.ones(len(codes), dtype=bool)
        is_start[1:] = self.codes[1:] != self.codes[:-1]
        self.group_start = np.maximum.accumulate(np.where(is_start, np.arange(len(codes)), 0))

    def position(self, t: np.ndarray) -> np.ndarray:
        """For each sorted row, the sorted index of ``(its group, t)``.

        That is its group's start plus the number of that group's events with ``ts < t``.
        """
        return np.searchsorted(self._keys, self._real + 1j * t, side="left")

    def unsort(self, values: np.ndarray) -> np.ndarray:
        """Scatter per-sorted-row values back to the original row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out

    def prefix_sums(self, values: np.ndarray) -> np.ndarray:
        """Inclusive within-group running sums of ``values`` (original order), sorted order.

        Restarting at each group keeps the rounding error at the scale of one card's history
        rather than of the whole data set.
        """
        return pd.Series(values[self.order]).groupby(self.codes).cumsum().to_numpy()

    def window_sum(self, prefix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Sum of sorted rows ``lo .. hi-1`` (all in the row's group) from ``prefix``."""
        upper = prefix[np.maximum(hi - 1, 0)]
        lower = np.where(lo > self.group_start, prefix[np.maximum(lo - 1, 0)], 0.0)
        return np.where(hi > lo, upper - lower, 0.0)


def _extra_column(df: pd.DataFrame, name: str) -> np.ndarray:
    # Raw transactions loaded as records keep a `features` column of dicts; a flattened
    # frame has one column per extra. Missing values are 0.0, as live.
    if "features" in df.columns:
        values = pd.Series(
            [d.get(name) if isinstance(d, Mapping) else None for d in df["features"]],
            index=df.index,
            dtype="float64",
        )
    elif name in df.columns:
        values = pd.to_numeric(df[name], errors="raise").astype("float64")
    else:
        values = pd.Series(0.0, index=df.index)
    return values.fillna(0.0).to_numpy(dtype=np.float64)
