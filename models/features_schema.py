"""Feature sets, their ordered names and schema hash, and the calendar flags.

Part of :mod:`~.features` (see its docstring for the semantics): the vector's layout, shared
by the live states (:mod:`~.features_state`) and the offline path (:mod:`~.features_offline`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence

from .days import DAY_S

__all__ = [
    "CARD_EXTENDED_NAMES",
    "DEFAULT_FEATURE_SET",
    "FEATURE_NAMES",
    "FEATURE_SETS",
    "HANDBOOK_FEATURE_NAMES",
    "NIGHT_END_HOUR",
    "WINDOWS_DAYS",
    "calendar_features",
    "extra_feature_names",
    "feature_names",
    "schema_hash",
]

WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)
"""Window lengths, in days, of the card and terminal aggregates."""

NIGHT_END_HOUR = 6
"""``is_night`` is 1 for UTC hours 0 .. NIGHT_END_HOUR - 1."""

_WINDOWS_S: tuple[float, ...] = tuple(d * DAY_S for d in WINDOWS_DAYS)
_MAX_WINDOW_S = max(_WINDOWS_S)
# Short card windows of the extended set: (name suffix, seconds).
_SHORT_WINDOWS: tuple[tuple[str, float], ...] = (("10m", 600.0), ("1h", 3600.0))
_DISTINCT_WINDOWS: tuple[tuple[str, float], ...] = (("1h", 3600.0), ("1d", DAY_S))
_MIN_MEAN_AMOUNT = 1.0  # the ratio's floor under the mean: probes of cents must not explode it

# Each window's column names with its length in seconds, formatted once: the vector below,
# the live states (features_state.py, where formatting them per transaction cost a fifth of
# the features' time) and the offline path all name their columns from here.
_CARD_WINDOWS: tuple[tuple[str, str, float], ...] = tuple(
    (f"card_count_{d}d", f"card_mean_amount_{d}d", w) for d, w in zip(WINDOWS_DAYS, _WINDOWS_S))
_TERMINAL_WINDOWS: tuple[tuple[str, str, float], ...] = tuple(
    (f"terminal_count_{d}d", f"terminal_fraud_ratio_{d}d", w)
    for d, w in zip(WINDOWS_DAYS, _WINDOWS_S))
_CARD_SHORT_WINDOWS: tuple[tuple[str, str, float], ...] = tuple(
    (f"card_count_{name}", f"card_amount_sum_{name}", w) for name, w in _SHORT_WINDOWS)
_CARD_DISTINCT_WINDOWS: tuple[tuple[str, float], ...] = tuple(
    (f"card_distinct_terminals_{name}", w) for name, w in _DISTINCT_WINDOWS)

HANDBOOK_FEATURE_NAMES: list[str] = (
    ["amount", "is_weekend", "is_night"]
    + [name for count, mean, _ in _CARD_WINDOWS for name in (count, mean)]
    + [name for count, ratio, _ in _TERMINAL_WINDOWS for name in (count, ratio)]
)
"""The handbook's feature vector, in order."""

CARD_EXTENDED_NAMES: list[str] = (
    ["card_seconds_since_prev"]
    + [name for count, total, _ in _CARD_SHORT_WINDOWS for name in (count, total)]
    + ["card_amount_ratio_30d", "card_terminal_new_30d"]
    + [name for name, _ in _CARD_DISTINCT_WINDOWS]
)
"""What the ``"extended"`` set adds after the handbook's features, in order."""

FEATURE_SETS: dict[str, list[str]] = {
    "handbook": HANDBOOK_FEATURE_NAMES,
    "extended": HANDBOOK_FEATURE_NAMES + CARD_EXTENDED_NAMES,
}
"""Feature set name -> its base vector (extras follow). The schema hash covers the names, so
a model trained on one set is refused by a worker configured with another."""

DEFAULT_FEATURE_SET = "extended"

FEATURE_NAMES: list[str] = FEATURE_SETS[DEFAULT_FEATURE_SET]
"""The default set's base vector, in order; configured extras follow as ``x_<name>``."""


def schema_hash(names: Sequence[str]) -> str:
    """Return the sha256 hex digest identifying an ordered list of feature names.

    A model is only valid for the exact vector it was trained on, so the registry stores
    this next to each model; order matters.

    >>> schema_hash(["a", "b"]) == schema_hash(["a", "b"]) != schema_hash(["b", "a"])
    True
    """
    # JSON rather than a plain join, so no name can forge a separator.
    return hashlib.sha256(json.dumps(list(names)).encode("utf-8")).hexdigest()


def extra_feature_names(extra: Iterable[str]) -> list[str]:
    """Column names of the configured extra features: ``x_<name>`` each."""
    return [f"x_{name}" for name in extra]


def feature_names(extra: Iterable[str] = (), feature_set: str = DEFAULT_FEATURE_SET) -> list[str]:
    """The full ordered vector: the set's base features (:data:`FEATURE_SETS`), then extras."""
    return _base_names(feature_set) + extra_feature_names(extra)


def _base_names(feature_set: str) -> list[str]:
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise ValueError(f"unknown feature set {feature_set!r}; known: {sorted(FEATURE_SETS)}"
                         ) from None


def calendar_features(ts: float) -> dict[str, float]:
    """``is_weekend`` and ``is_night`` (UTC) of an epoch timestamp, as 0.0/1.0.

    >>> calendar_features(1704511800.0)  # 2024-01-06, a Saturday, 03:30 UTC
    {'is_weekend': 1.0, 'is_night': 1.0}
    """
    # Same float arithmetic as the vectorised path in compute_features, so they agree exactly.
    day = math.floor(ts / DAY_S)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = (ts % DAY_S) // 3600.0
    return {
        "is_weekend": 1.0 if weekday >= 5 else 0.0,
        "is_night": 1.0 if hour < NIGHT_END_HOUR else 0.0,
    }
