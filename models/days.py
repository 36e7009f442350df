"""Event time in days: the seconds in a day, day numbers, UTC dates for reports.

Times are epoch seconds (UTC) throughout ``models/``; windows, delays and the per-day metrics
of :mod:`~.ranking` count whole days of :data:`DAY_S` seconds.

>>> day_index([0.0, 86_399.0, 86_400.0, 200_000.0], start=0.0).tolist()
[0, 0, 1, 2]
>>> utc_iso(86_400.0), utc_date(86_400.0)
('1970-01-02T00:00:00Z', '1970-01-02')
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

__all__ = ["DAY_S", "day_index", "utc_date", "utc_iso"]

DAY_S = 86_400.0
"""Seconds per day."""


def day_index(ts: np.ndarray, start: float) -> np.ndarray:
    """Whole days since ``start`` of each event time (int64): day 0 is ``[start, start + 1d)``."""
    return np.floor((np.asarray(ts, dtype=np.float64) - start) / DAY_S).astype(np.int64)


def utc_iso(ts: float) -> str:
    """``ts`` as an ISO 8601 UTC time to the second, e.g. ``2024-04-01T00:00:00Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_date(ts: float) -> str:
    """The UTC date of ``ts``, e.g. ``2024-04-01``."""
    return utc_iso(ts)[:10]
