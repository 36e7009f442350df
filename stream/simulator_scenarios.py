"""The simulator's added-traffic fraud scenarios: 4, card testing, and 5, account takeover
(see :mod:`~.simulator` for what each does). Each returns the rows it adds as arrays
``(customer, terminal, ts, amount, fraud_scenario)``; :func:`~.simulator.simulate` merges them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..models.days import DAY_S

if TYPE_CHECKING:
    from .simulator import SimulationConfig

__all__ = ["account_takeover", "card_testing"]

# Card testing: probe amounts, seconds between probes, then minutes until the large amount.
_PROBE_AMOUNT_RANGE = (0.5, 3.0)
_PROBE_GAP_MEAN_S = 45.0
_CASHOUT_DELAY_RANGE_S = (120.0, 1800.0)
_CASHOUT_FACTOR_RANGE = (5.0, 10.0)
_TAKEOVER_FACTOR_RANGE = (2.0, 6.0)


_Added = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _no_rows() -> _Added:
    e = np.empty(0)
    return (e.astype(np.int64), e.astype(np.int64), e, e, e.astype(np.int8))


def card_testing(c: SimulationConfig, rng: np.random.Generator,
                  mean_amount: np.ndarray) -> _Added:
    """Scenario 4: per tested card, probes of tiny amounts, then one large amount."""
    if not c.card_testing_per_day:
        return _no_rows()
    k = c.card_testing_probes
    cust = np.concatenate([rng.choice(c.n_customers, size=c.card_testing_per_day, replace=False)
                           for _ in range(c.n_days)])
    day = np.repeat(np.arange(c.n_days), c.card_testing_per_day)
    m = len(cust)
    start = day * DAY_S + rng.uniform(0, DAY_S - 3 * 3600.0, size=m)
    # Whole seconds, as the legitimate traffic: probes k apart by exponential gaps.
    # Capped so that a burst always ends within the 3 h left of its day.
    gaps = np.minimum(rng.exponential(_PROBE_GAP_MEAN_S, size=(m, k)), 600.0)
    gaps[:, 0] = 0.0
    probe_t = np.trunc(start[:, None] + np.cumsum(gaps, axis=1))
    cashout_t = np.trunc(probe_t[:, -1] + rng.uniform(*_CASHOUT_DELAY_RANGE_S, size=m))
    t = np.concatenate((probe_t, cashout_t[:, None]), axis=1).ravel()
    amount = np.concatenate(
        (rng.uniform(*_PROBE_AMOUNT_RANGE, size=(m, k)),
         (mean_amount[cust] * rng.uniform(*_CASHOUT_FACTOR_RANGE, size=m))[:, None]), axis=1)
    term = rng.integers(0, c.n_terminals, size=(m, k + 1)).ravel()
    return (np.repeat(cust, k + 1), term, c.start_ts + t, np.round(amount.ravel(), 2),
            np.full(m * (k + 1), 4, dtype=np.int8))


def account_takeover(c: SimulationConfig, rng: np.random.Generator, mean_amount: np.ndarray,
                      cust_xy: np.ndarray, term_xy: np.ndarray) -> _Added:
    """Scenario 5: added transactions at unreachable terminals, larger amounts, any hour."""
    if not c.account_takeover_per_day or not c.account_takeover_days:
        return _no_rows()
    cust = np.concatenate([rng.choice(c.n_customers, size=c.account_takeover_per_day,
                                      replace=False) for _ in range(c.n_days)])
    first = np.repeat(np.arange(c.n_days), c.account_takeover_per_day)
    # One row per (taken-over customer, day of the takeover within the simulated span).
    span = np.arange(c.account_takeover_days)
    t_cust = np.repeat(cust, len(span))
    t_day = (first[:, None] + span).ravel()
    inside = t_day < c.n_days
    t_cust, t_day = t_cust[inside], t_day[inside]
    per_day = rng.poisson(c.account_takeover_rate, size=len(t_cust))
    cust_rows, day_rows = np.repeat(t_cust, per_day), np.repeat(t_day, per_day)
    m = len(cust_rows)
    t = day_rows * DAY_S + np.trunc(rng.uniform(1.0, DAY_S, size=m))
    # Terminals the customer never uses: redraw the few that fall within its radius.
    term = rng.integers(0, c.n_terminals, size=m)
    for _ in range(100):
        near = np.linalg.norm(term_xy[term] - cust_xy[cust_rows], axis=1) < c.radius
        if not near.any():
            break
        term[near] = rng.integers(0, c.n_terminals, size=int(near.sum()))
    amount = mean_amount[cust_rows] * rng.uniform(*_TAKEOVER_FACTOR_RANGE, size=m)
    return (cust_rows, term, c.start_ts + t, np.round(amount, 2), np.full(m, 5, dtype=np.int8))
