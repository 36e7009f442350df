"""The handbook's validation windows: train, a label-delay gap, test; shifted by the test length.

The protocol of the Fraud-Detection Handbook (Le Borgne et al., chapter "Validation
strategies"): a model is trained on a window of ``train_days``, then nothing is used for
``delay_days`` (the labels of those days are not known yet when the model goes live), then it
is tested on the next ``test_days``. Several such windows are taken one after another, each
shifted by the test length, so the test windows are consecutive and never overlap. As in the
handbook, cards already known to be compromised (a fraud of theirs, at or after the start of
training, whose label has arrived by the test day: ``ts < day - delay``) are removed from
each test day: an investigator has already blocked them (:func:`split_window`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .days import DAY_S, day_index, utc_iso

__all__ = ["Window", "WindowProtocol", "protocol_windows", "required_days", "split_window"]


@dataclass(frozen=True)
class WindowProtocol:
    """The protocol's settings, shared by the studies' configs: ``n_windows`` windows of
    ``train_days`` / ``delay_days`` / ``test_days`` after ``burn_in_days`` of history, with or
    without the handbook's ``exclude_known_cards`` rule (:func:`split_window`)."""

    n_windows: int = 4
    train_days: float = 7
    delay_days: float = 7
    test_days: float = 7
    burn_in_days: float = 30
    exclude_known_cards: bool = True

    def days_needed(self) -> int:
        """Days of simulated data the protocol needs."""
        return required_days(self.n_windows, train_days=self.train_days,
                             delay_days=self.delay_days, test_days=self.test_days,
                             burn_in_days=self.burn_in_days)


@dataclass(frozen=True)
class Window:
    """One train / delay / test split, in epoch seconds (half-open intervals)."""

    index: int
    train_start: float
    train_end: float
    test_start: float
    test_end: float

    def to_dict(self) -> dict[str, Any]:
        """Times as epoch seconds and as UTC dates, for reports."""
        out: dict[str, Any] = asdict(self)
        for key in ("train_start", "train_end", "test_start", "test_end"):
            out[key + "_utc"] = utc_iso(getattr(self, key))
        return out


def protocol_windows(
    start_ts: float,
    n_windows: int,
    *,
    train_days: float = 7,
    delay_days: float = 7,
    test_days: float = 7,
    burn_in_days: float = 0,
) -> list[Window]:
    """The handbook's windows: train, a label-delay gap, test; shifted by the test length.

    The first training window starts ``burn_in_days`` after ``start_ts`` (history for the
    30-day features to fill up).

    >>> [(w.train_start, w.test_start, w.test_end) for w in protocol_windows(
    ...     0.0, 2, train_days=1, delay_days=1, test_days=1)]
    [(0.0, 172800.0, 259200.0), (86400.0, 259200.0, 345600.0)]
    """
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    if not (train_days > 0 and test_days > 0 and delay_days >= 0 and burn_in_days >= 0):
        raise ValueError("train_days and test_days must be > 0, delay and burn-in >= 0")
    windows = []
    for i in range(n_windows):
        train_start = start_ts + (burn_in_days + i * test_days) * DAY_S
        train_end = train_start + train_days * DAY_S
        test_start = train_end + delay_days * DAY_S
        test_end = test_start + test_days * DAY_S
        windows.append(Window(i, train_start, train_end, test_start, test_end))
    return windows


def required_days(
    n_windows: int,
    *,
    train_days: float = 7,
    delay_days: float = 7,
    test_days: float = 7,
    burn_in_days: float = 0,
) -> int:
    """Days of data :func:`protocol_windows` needs, rounded up to whole days.

    >>> required_days(3, burn_in_days=30)
    65
    """
    return math.ceil(burn_in_days + train_days + delay_days + n_windows * test_days)


def split_window(
    ts: np.ndarray,
    card: np.ndarray,
    y: np.ndarray,
    window: Window,
    delay_days: float,
    exclude_known_cards: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` of one window.

    With ``exclude_known_cards`` (the handbook's rule) a test transaction is dropped when its
    card had a fraud with ``ts`` in ``[train_start, test day's midnight - delay)``: that fraud's
    label has arrived, so the card is known and already blocked. Test days are counted from
    ``test_start``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    codes = pd.factorize(pd.Series(np.asarray(card)), use_na_sentinel=False)[0]
    train = (ts >= window.train_start) & (ts < window.train_end)
    test = (ts >= window.test_start) & (ts < window.test_end)
    if exclude_known_cards:
        since = y & (ts >= window.train_start)
        first_fraud = np.full(codes.max() + 1 if len(codes) else 0, np.inf)
        np.minimum.at(first_fraud, codes[since], ts[since])
        day_start = window.test_start + day_index(ts, window.test_start) * DAY_S
        known = first_fraud[codes] < day_start - delay_days * DAY_S
        test &= ~known
    return np.flatnonzero(train), np.flatnonzero(test)
