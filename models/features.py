"""Point-in-time transaction features: one definition, used live and offline.

The feature set is the "baseline feature transformation" of the Fraud-Detection Handbook
(Le Borgne et al.): per card, count and mean amount over the last 1, 7 and 30 days; per
terminal, count and fraud ratio over the last 1, 7 and 30 days shifted back by the label
delay; plus weekend/night flags and the transaction's own amount.

Two feature sets (:data:`FEATURE_SETS`, chosen by configuration): ``"handbook"`` is the
above; ``"extended"`` (the default) adds card-keyed velocity and novelty features (recency,
10-minute and 1-hour windows, amount against the card's history, first use of a terminal,
distinct terminals), see docs/features.md. Every extended feature is keyed by card, so it is
exact live: a card's transactions all reach the one worker that owns its partition.

Live scoring keeps small per-card / per-terminal states (:class:`CardState`,
:class:`TerminalState`, JSON-able so they fit in faust tables) and calls
:func:`transaction_features`; training and backtests call :func:`compute_features` on a
DataFrame. Both follow the semantics below, and a test replays a simulated stream through the
states and checks that the two agree to 1e-9.

This module assembles the vector and re-exports the rest: the sets, names and schema hash
live in :mod:`~.features_schema`, the states in :mod:`~.features_state`, the vectorised path
in :mod:`~.features_offline`.

Semantics
---------
* **Event time only.** Every window is placed on the transaction's own ``ts`` (epoch seconds,
  float; RFC 3339 strings are converted by validation before they reach this module), never
  on wall-clock time. ``w`` below is the window in seconds (``days * 86400``).
* **Strictly before, in event time.** Card windows cover ``[ts - w, ts)``: an event exactly
  ``w`` old is in, the current transaction is out, and so is *every other event with the same
  ``ts``*, whichever came first in the stream. Ties are thus decided by time alone, never by
  arrival order: this is what lets offline (sorted) and live (arrival order, possibly
  re-ordered by repartitioning by terminal, or by a redelivery) agree exactly. Events that
  arrive out of order are counted by their ``ts`` too.
* **Terminal windows are shifted back by the label delay** ``D`` (``delay_s``), because a
  fraud is only known ``D`` after the transaction: a terminal's window covers transactions
  with ``tx ts`` in ``[ts - D - w, ts - D)``. ``count`` is the number of them and
  ``fraud_ratio`` the frauds among them divided by ``count`` (0 when ``count`` is 0).
  Offline assumes every fraud is known after ``D``; live, a fraud counts once its label has
  reached :meth:`TerminalState.add_fraud` (with a label delay of at most ``D`` it always has,
  since ``tx ts < ts - D``). Bounds are computed as ``(ts - D) - w`` in both paths so the
  floating-point boundary is identical.
* **Card mean amount** is the mean over the card window, 0 when the window is empty.
* **Extended card features** use the same ``[ts - w, ts)`` windows (``w`` of 10 minutes,
  1 hour, 1 day or 30 days): ``card_seconds_since_prev`` is ``ts`` minus the newest event time
  in ``[ts - 30 d, ts)`` (30 days when there is none); ``card_amount_ratio_30d`` is the
  amount over ``max(card_mean_amount_30d, 1)`` (1 when the window is empty);
  ``card_terminal_new_30d`` is 1 when the card has no event at this terminal in the 30-day
  window; ``card_distinct_terminals_{1h,1d}`` count the terminals of the card's events in
  the window.
* **Calendar flags in UTC**: ``is_weekend`` is Saturday or Sunday, ``is_night`` is an hour of
  day below 6 (00:00-05:59). They are computed with the same arithmetic on ``ts`` in both
  paths (not ``datetime``), so they cannot drift apart.
* **Extra features.** Numeric values in a transaction's optional ``features`` object are
  appended as ``x_<name>`` for an explicit, configured list of names, so the vector width is
  fixed; a missing value is 0.0.
* **Bounded memory.** States keep only what a query at or after the newest ``ts`` they have
  seen can still need: the longest window for cards, the longest window plus the delay for
  terminals. An event arriving later than that behind the newest one sees a truncated history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .features_offline import compute_features
from .features_schema import (
    CARD_EXTENDED_NAMES,
    DEFAULT_FEATURE_SET,
    FEATURE_NAMES,
    FEATURE_SETS,
    HANDBOOK_FEATURE_NAMES,
    NIGHT_END_HOUR,
    WINDOWS_DAYS,
    _base_names,
    calendar_features,
    extra_feature_names,
    feature_names,
    schema_hash,
)
from .features_state import CardState, TerminalState

__all__ = [
    "DEFAULT_FEATURE_SET",
    "FEATURE_SETS",
    "CARD_EXTENDED_NAMES",
    "WINDOWS_DAYS",
    "NIGHT_END_HOUR",
    "FEATURE_NAMES",
    "HANDBOOK_FEATURE_NAMES",
    "CardState",
    "TerminalState",
    "schema_hash",
    "extra_feature_names",
    "feature_names",
    "extra_features",
    "calendar_features",
    "transaction_features",
    "assemble_features",
    "compute_features",
    "to_matrix",
]


def extra_features(tx: Mapping[str, Any], extra: Iterable[str]) -> dict[str, float]:
    """Pick the configured extra numeric features out of ``tx["features"]`` (missing -> 0.0)."""
    given = tx.get("features") or {}
    out: dict[str, float] = {}
    for name in extra:
        value = given.get(name)
        out[f"x_{name}"] = 0.0 if value is None else float(value)
    return out


def transaction_features(
    tx: Mapping[str, Any],
    card: CardState,
    terminal: TerminalState,
    delay_s: float,
    extra: Iterable[str] = (),
    feature_set: str = DEFAULT_FEATURE_SET,
) -> dict[str, float]:
    """The full feature dict of one validated transaction, from the states *before* it.

    ``tx`` needs ``ts`` (epoch seconds), ``amount`` and (extended set) ``terminal_id``;
    ``features`` is optional. The states are read, not updated: call ``card.add`` and
    ``terminal.add_transaction`` afterwards. Keys are :func:`feature_names`, in order.
    """
    return assemble_features(tx, float(tx["ts"]), card, terminal.features(float(tx["ts"]), delay_s),
                             extra, feature_set)


def assemble_features(
    tx: Mapping[str, Any],
    ts: float,
    card: CardState,
    terminal_features: Mapping[str, float],
    extra: Iterable[str] = (),
    feature_set: str = DEFAULT_FEATURE_SET,
) -> dict[str, float]:
    """One transaction's feature dict in :func:`feature_names` order, given its terminal's
    features (read from a :class:`TerminalState`, here or in a worker's replica)."""
    if feature_set not in FEATURE_SETS:
        _base_names(feature_set)  # raises, naming the known sets
    amount = float(tx["amount"])
    out: dict[str, float] = {"amount": amount}
    out.update(calendar_features(ts))
    out.update(card.features(ts))
    out.update(terminal_features)
    if feature_set == "extended":
        out.update(card.recent_features(ts, amount, tx["terminal_id"]))
    out.update(extra_features(tx, extra))
    return out


def to_matrix(feature_dicts: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    """Stack feature dicts into a ``(len(feature_dicts), len(names))`` float64 matrix.

    A missing name raises ``KeyError``: the width is fixed by configuration, so a gap is a bug.
    """
    out = np.empty((len(feature_dicts), len(names)), dtype=np.float64)
    for i, d in enumerate(feature_dicts):
        out[i] = [d[name] for name in names]
    return out
