"""Live per-card and per-terminal feature states, JSON-able for faust tables.

Part of :mod:`~.features` (see its docstring for the semantics): :class:`CardState` and
:class:`TerminalState` answer one transaction's window queries from the events before it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from .features_schema import (
    _CARD_DISTINCT_WINDOWS,
    _CARD_SHORT_WINDOWS,
    _CARD_WINDOWS,
    _MAX_WINDOW_S,
    _MIN_MEAN_AMOUNT,
    _TERMINAL_WINDOWS,
)

__all__ = ["CardState", "TerminalState"]

_STATE_VERSION = 1
_CARD_STATE_VERSION = 2  # 2: each event's terminal (novelty and distinct terminals)
_TERMINAL_STATE_VERSION = 2  # 2: event identities (duplicates are not counted)


class CardState:
    """Recent history of one card: sorted event times, their amounts and terminals.

    >>> card = CardState()
    >>> card.add(0.0, 10.0, "t1"); card.add(3600.0, 30.0, "t2")
    >>> card.features(7200.0)["card_mean_amount_1d"]
    20.0
    >>> recent = card.recent_features(7200.0, 40.0, "t1")
    >>> recent["card_seconds_since_prev"], recent["card_terminal_new_30d"]
    (3600.0, 0.0)
    """

    __slots__ = ("_ts", "_amount", "_terminal")

    def __init__(self) -> None:
        # Parallel lists sorted by ts: compact in JSON, and bisect gives window bounds.
        self._ts: list[float] = []
        self._amount: list[float] = []
        self._terminal: list[str | None] = []  # None: restored from a v1 state, unknown

    def __len__(self) -> int:
        return len(self._ts)

    def features(self, ts: float) -> dict[str, float]:
        """Count and mean amount over each window ``[ts - w, ts)``."""
        times, amounts = self._ts, self._amount
        hi = bisect.bisect_left(times, ts)
        out: dict[str, float] = {}
        for count_name, mean_name, w in _CARD_WINDOWS:
            lo = bisect.bisect_left(times, ts - w, 0, hi)
            n = hi - lo
            out[count_name] = float(n)
            out[mean_name] = sum(amounts[lo:hi]) / n if n else 0.0
        return out

    def recent_features(self, ts: float, amount: float, terminal_id: str) -> dict[str, float]:
        """The extended set's card features (:data:`CARD_EXTENDED_NAMES`), see the module doc."""
        times, amounts, terminals = self._ts, self._amount, self._terminal
        hi = bisect.bisect_left(times, ts)
        lo_30d = bisect.bisect_left(times, ts - _MAX_WINDOW_S, 0, hi)
        out: dict[str, float] = {
            "card_seconds_since_prev": ts - times[hi - 1] if hi > lo_30d else _MAX_WINDOW_S,
        }
        for count_name, sum_name, w in _CARD_SHORT_WINDOWS:
            lo = bisect.bisect_left(times, ts - w, lo_30d, hi)
            out[count_name] = float(hi - lo)
            out[sum_name] = sum(amounts[lo:hi]) if hi > lo else 0.0
        n = hi - lo_30d
        # Same operations as compute_features: the sum over the count, then the ratio.
        mean = sum(amounts[lo_30d:hi]) / n if n else 0.0
        out["card_amount_ratio_30d"] = amount / max(mean, _MIN_MEAN_AMOUNT) if n else 1.0
        out["card_terminal_new_30d"] = 0.0 if terminal_id in terminals[lo_30d:hi] else 1.0
        for name, w in _CARD_DISTINCT_WINDOWS:
            lo = bisect.bisect_left(times, ts - w, lo_30d, hi)
            out[name] = float(len(set(terminals[lo:hi])))
        return out

    def add(self, ts: float, amount: float, terminal_id: str | None = None) -> None:
        """Record a transaction of this card (after its features were taken)."""
        # bisect_right keeps arrival order among equal ts; insort also absorbs late events.
        i = bisect.bisect_right(self._ts, ts)
        self._ts.insert(i, ts)
        self._amount.insert(i, amount)
        self._terminal.insert(i, terminal_id)
        self._prune(self._ts[-1] - _MAX_WINDOW_S)

    def _prune(self, cutoff: float) -> None:
        k = bisect.bisect_left(self._ts, cutoff)
        if k:
            del self._ts[:k], self._amount[:k], self._terminal[:k]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (for a faust table value)."""
        return {"v": _CARD_STATE_VERSION, "ts": list(self._ts), "amount": list(self._amount),
                "terminal": list(self._terminal)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CardState:
        """Rebuild a state from :meth:`to_dict` output.

        A version 1 state (before terminals were kept) is read with unknown terminals: for
        up to 30 days its card's novelty and distinct-terminal features see its older events
        as one unknown terminal, which only a worker upgraded with live state meets.
        """
        version = data.get("v", _STATE_VERSION)
        if version not in (_STATE_VERSION, _CARD_STATE_VERSION):
            raise ValueError(f"unsupported feature-state version {version!r}")
        state = cls()
        state._ts = [float(t) for t in data["ts"]]
        state._amount = [float(a) for a in data["amount"]]
        terminals = data.get("terminal") if version == _CARD_STATE_VERSION else None
        state._terminal = (list(terminals) if terminals is not None
                           else [None] * len(state._ts))
        if not len(state._ts) == len(state._amount) == len(state._terminal):
            raise ValueError("card state: ts, amount and terminal lists differ in length")
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CardState):
            return NotImplemented
        return (self._ts, self._amount, self._terminal) == (
            other._ts, other._amount, other._terminal)

    def __repr__(self) -> str:
        return f"CardState(n={len(self)})"


class TerminalState:
    """Recent history of one terminal: sorted transaction times and sorted fraud times.

    Frauds are stored by their *transaction* ``ts``, added when the label arrives.
    The pruning horizon needs the label delay, which only :meth:`features` is given; the
    largest delay seen there is remembered (and serialised) so that the ``add_*`` methods
    can prune too. Before the first :meth:`features` call nothing is pruned.

    Each event may carry an identity (``uid``): an event whose identity is already held at
    the same time is a duplicate and is not counted again. Identities are what lets every
    worker build the same state from the same events whatever order they arrive in (a
    transaction is applied locally when scored and again when read back from Kafka; a
    redelivered transaction or label arrives twice).
    """

    __slots__ = ("_ts", "_ids", "_fraud_ts", "_fraud_ids", "_delay_s")

    def __init__(self, delay_s: float | None = None) -> None:
        # Parallel lists sorted by time: identities sit next to their times, so a duplicate
        # check is a bisect plus a scan of the (few) events at exactly that time.
        self._ts: list[float] = []
        self._ids: list[Any] = []
        self._fraud_ts: list[float] = []
        self._fraud_ids: list[Any] = []
        # A state that is only ever added to (a replica: stream/terminal_view.py) is given
        # the delay up front, or it would never prune.
        self._delay_s: float | None = None if delay_s is None else float(delay_s)

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def n_frauds(self) -> int:
        """Frauds currently held (by transaction time)."""
        return len(self._fraud_ts)

    @property
    def newest(self) -> float | None:
        """The newest transaction time held (None when empty)."""
        return self._ts[-1] if self._ts else None

    def features(self, ts: float, delay_s: float) -> dict[str, float]:
        """Count and fraud ratio over each window ``[ts - D - w, ts - D)``."""
        if self._delay_s is None or delay_s > self._delay_s:
            self._delay_s = float(delay_s)
        self._prune(ts)
        end = ts - delay_s
        times, fraud_times = self._ts, self._fraud_ts
        hi = bisect.bisect_left(times, end)
        fraud_hi = bisect.bisect_left(fraud_times, end)
        out: dict[str, float] = {}
        for count_name, ratio_name, w in _TERMINAL_WINDOWS:
            start = end - w
            n = hi - bisect.bisect_left(times, start, 0, hi)
            out[count_name] = float(n)
            if n:
                frauds = fraud_hi - bisect.bisect_left(fraud_times, start, 0, fraud_hi)
                # min(): a fraud whose transaction was never seen here must not push it past 1.
                out[ratio_name] = min(1.0, frauds / n)
            else:
                out[ratio_name] = 0.0
        return out

    def add_transaction(self, ts: float, uid: Any = None) -> bool:
        """Record a transaction at this terminal (after its features were taken).

        Returns False, changing nothing, if an event with the same ``uid`` and ``ts`` is held.
        """
        if not _insert(self._ts, self._ids, ts, uid):
            return False
        self._prune(ts)
        return True

    def add_fraud(self, tx_ts: float, uid: Any = None) -> bool:
        """Record a confirmed fraud, by the ``ts`` of the transaction it labels (once per ``uid``)."""
        if not _insert(self._fraud_ts, self._fraud_ids, tx_ts, uid):
            return False
        self._prune(tx_ts)
        return True

    def _prune(self, ts: float) -> None:
        if self._delay_s is None:
            return
        newest = max(ts, self._ts[-1]) if self._ts else ts
        cutoff = newest - self._delay_s - _MAX_WINDOW_S
        for seq, ids in ((self._ts, self._ids), (self._fraud_ts, self._fraud_ids)):
            k = bisect.bisect_left(seq, cutoff)
            if k:
                del seq[:k], ids[:k]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        return {
            "v": _TERMINAL_STATE_VERSION,
            "ts": list(self._ts),
            "ids": list(self._ids),
            "fraud_ts": list(self._fraud_ts),
            "fraud_ids": list(self._fraud_ids),
            "delay_s": self._delay_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TerminalState:
        """Rebuild a state from :meth:`to_dict` output (version 1, without identities, too)."""
        if data.get("v") not in (_STATE_VERSION, _TERMINAL_STATE_VERSION):
            raise ValueError(f"unsupported terminal-state version {data.get('v')!r}")
        state = cls()
        state._ts = [float(t) for t in data["ts"]]
        state._fraud_ts = [float(t) for t in data["fraud_ts"]]
        state._ids = list(data.get("ids") or [None] * len(state._ts))
        state._fraud_ids = list(data.get("fraud_ids") or [None] * len(state._fraud_ts))
        if len(state._ids) != len(state._ts) or len(state._fraud_ids) != len(state._fraud_ts):
            raise ValueError("terminal state: times and identities differ in length")
        if state._ts != sorted(state._ts) or state._fraud_ts != sorted(state._fraud_ts):
            raise ValueError("terminal state: times are not sorted")
        delay = data.get("delay_s")
        state._delay_s = None if delay is None else float(delay)
        return state

    def columns(self) -> tuple[list[float], list[Any], list[float], list[Any], float | None]:
        """The state's own lists (times, identities, fraud times, fraud identities) and its
        delay, not copies: for a caller that reads them at once (a snapshot writer)."""
        return self._ts, self._ids, self._fraud_ts, self._fraud_ids, self._delay_s

    @classmethod
    def from_columns(cls, ts: list[float], ids: list[Any], fraud_ts: list[float],
                     fraud_ids: list[Any], delay_s: float | None) -> TerminalState:
        """A state over these lists (taken, not copied); the caller checked them (lengths
        equal, times sorted), as :meth:`from_dict` does for JSON input."""
        state = cls(delay_s)
        state._ts, state._ids, state._fraud_ts, state._fraud_ids = ts, ids, fraud_ts, fraud_ids
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TerminalState):
            return NotImplemented
        return (self._ts, self._fraud_ts, self._delay_s) == (
            other._ts,
            other._fraud_ts,
            other._delay_s,
        )

    def __repr__(self) -> str:
        return f"TerminalState(n={len(self)}, frauds={self.n_frauds})"


def _insert(times: list[float], ids: list[Any], t: float, uid: Any) -> bool:
    """Insert ``(t, uid)`` keeping ``times`` sorted; False if ``uid`` is held at ``t`` already."""
    hi = bisect.bisect_right(times, t)
    if uid is not None:
        lo = bisect.bisect_left(times, t, 0, hi)
        if uid in ids[lo:hi]:
            return False
    times.insert(hi, t)
    ids.insert(hi, uid)
    return True
