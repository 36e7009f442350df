"""Deterministic card-transaction simulator with labelled frauds, and its file/Kafka sinks.

Modelled on the generator of the Fraud-Detection Handbook (Le Borgne et al., "Reproducible
Machine Learning for Credit Card Fraud Detection - Practical Handbook", chapter "Transaction
data simulator"), vectorised with numpy:

- customers and terminals sit uniformly on a ``grid_size`` x ``grid_size`` square; a customer
  pays only at terminals closer than ``radius``;
- a customer's amounts are N(mean, mean/2) with mean ~ U(5, 100) (a negative draw is redrawn
  from U(0, 2 * mean)) and transactions per day ~ Poisson(rate) with rate ~ U(0, 4);
- times of day ~ N(12:00, 20000 s), truncated to whole seconds; draws outside the day are
  dropped, as in the handbook;
- fraud scenario 1: every amount over ``fraud_amount_threshold`` is fraud;
  scenario 2: each day ``compromised_terminals_per_day`` terminals are compromised for the
  next ``terminal_compromise_days`` days and all their transactions are fraud;
  scenario 3: each day ``compromised_customers_per_day`` customers are compromised for the
  next ``customer_compromise_days`` days and ``customer_fraud_share`` of their transactions
  get ``customer_fraud_amount_factor`` times the amount and are fraud.
  Later scenarios override earlier ones, as in the handbook.

Two more scenarios a fraud team meets are options, off by default (the handbook's three stay
the default mix; :data:`MIXES` names the mixes):

- scenario 4, card testing: each day ``card_testing_per_day`` cards are tested: a burst of
  ``card_testing_probes`` tiny amounts (U(0.5, 3)) seconds to minutes apart at terminals
  anywhere, then, minutes later, one large amount (U(5, 10) x the customer's mean);
- scenario 5, account takeover: each day ``account_takeover_per_day`` customers are taken
  over for ``account_takeover_days`` days; the fraudster adds Poisson(``account_takeover_rate``)
  transactions a day, at any hour, at terminals the customer cannot reach (outside
  ``radius``), for U(2, 6) x the customer's mean.

Both *add* transactions (the card's owner keeps paying as before) and are all fraud.

Generation is pure (:func:`simulate`, :func:`events`, :func:`summary`); randomness comes only
from ``SimulationConfig.seed``. The sinks (:func:`write_file`, :func:`produce_to_kafka`) do the
I/O.

>>> df = simulate(SimulationConfig(n_customers=50, n_terminals=100, n_days=3))
>>> list(df.columns)
['tx_id', 'ts', 'card_id', 'terminal_id', 'amount', 'is_fraud', 'fraud_scenario']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..models.days import DAY_S, utc_iso
from .simulator_kafka import produce_to_kafka
from .simulator_scenarios import account_takeover, card_testing

__all__ = [
    "COLUMNS",
    "DEFAULT_START",
    "Event",
    "MIXES",
    "SCENARIOS",
    "SimulationConfig",
    "events",
    "produce_to_kafka",
    "read_file",
    "simulate",
    "summary",
    "write_file",
]

#: 2026-01-01T00:00:00Z as epoch seconds.
DEFAULT_START = 1_767_225_600.0
#: Columns of :func:`simulate`'s DataFrame, in order, with their dtypes.
COLUMNS: dict[str, str] = {
    "tx_id": "str",
    "ts": "float64",
    "card_id": "str",
    "terminal_id": "str",
    "amount": "float64",
    "is_fraud": "bool",
    "fraud_scenario": "int8",
}

# Customer profiles and times of day: the handbook's values.
_MEAN_AMOUNT_RANGE = (5.0, 100.0)
_TX_PER_DAY_RANGE = (0.0, 4.0)
_TIME_OF_DAY_MEAN_S = DAY_S / 2
_TIME_OF_DAY_STD_S = 20_000.0

#: (kind, key, value, event_ts) as yielded by :func:`events`.
Event = tuple[str, str, dict[str, Any], float]

#: ``fraud_scenario`` code -> what it is.
SCENARIOS: dict[int, str] = {
    1: "amount > threshold",
    2: "compromised terminal",
    3: "compromised card",
    4: "card testing",
    5: "account takeover",
}

#: Named scenario mixes: :class:`SimulationConfig` overrides per 5,000 customers
#: (:meth:`SimulationConfig.scaled` scales the daily counts with the population).
MIXES: dict[str, dict[str, int]] = {
    "handbook": {},
    "extended": {"card_testing_per_day": 4, "account_takeover_per_day": 3},
}



@dataclass(frozen=True)
class SimulationConfig:
    """Everything :func:`simulate` needs; the defaults are the handbook's (30 days).

    ``start`` is epoch seconds or a timezone-aware datetime (midnight of day 0).
    """

    n_customers: int = 5000
    n_terminals: int = 10000
    n_days: int = 30
    start: float | datetime = DEFAULT_START
    grid_size: float = 100.0
    radius: float = 5.0
    seed: int = 0
    label_delay_days: float = 7.0
    # Scenario 1: large amounts.
    fraud_amount_threshold: float = 220.0
    # Scenario 2: compromised terminals.
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    # Scenario 3: compromised card credentials.
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    customer_fraud_share: float = 1 / 3
    customer_fraud_amount_factor: float = 5.0
    # Scenario 4: card testing (off by default).
    card_testing_per_day: int = 0
    card_testing_probes: int = 5
    # Scenario 5: account takeover (off by default).
    account_takeover_per_day: int = 0
    account_takeover_days: int = 3
    account_takeover_rate: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("n_customers", "n_terminals", "n_days"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("grid_size", "radius"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0")
        if self.label_delay_days < 0:
            problems.append("label_delay_days must be >= 0")
        if not 0 <= self.compromised_terminals_per_day <= self.n_terminals:
            problems.append("compromised_terminals_per_day must be in [0, n_terminals]")
        if not 0 <= self.compromised_customers_per_day <= self.n_customers:
            problems.append("compromised_customers_per_day must be in [0, n_customers]")
        if self.terminal_compromise_days < 0 or self.customer_compromise_days < 0:
            problems.append("compromise durations must be >= 0 days")
        if not 0 <= self.card_testing_per_day <= self.n_customers:
            problems.append("card_testing_per_day must be in [0, n_customers]")
        if not 0 <= self.account_takeover_per_day <= self.n_customers:
            problems.append("account_takeover_per_day must be in [0, n_customers]")
        if self.card_testing_probes < 1:
            problems.append("card_testing_probes must be >= 1")
        if self.account_takeover_days < 0 or not self.account_takeover_rate >= 0:
            problems.append("account takeover days and rate must be >= 0")
        if not 0 <= self.customer_fraud_share <= 1:
            problems.append("customer_fraud_share must be in [0, 1]")
        if isinstance(self.start, datetime) and self.start.tzinfo is None:
            problems.append("start is a naive datetime; give it a tzinfo (e.g. timezone.utc)")
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @property
    def start_ts(self) -> float:
        """``start`` as epoch seconds."""
        if isinstance(self.start, datetime):
            return self.start.timestamp()
        return float(self.start)

    @classmethod
    def scaled(cls, n_customers: int, mix: str = "handbook", **overrides: Any
               ) -> "SimulationConfig":
        """A population of ``n_customers`` (and twice as many terminals) with the daily
        compromise counts of ``mix`` (:data:`MIXES`) scaled to it, so a smaller run keeps
        about the same fraud mix and rate (the rates are per 5,000 customers / 10,000
        terminals)."""
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {sorted(MIXES)}, not {mix!r}")
        defaults = cls()
        scale = n_customers / defaults.n_customers
        params: dict[str, Any] = {"n_customers": n_customers, "n_terminals": 2 * n_customers}
        per_day = {"compromised_terminals_per_day": defaults.compromised_terminals_per_day,
                   "compromised_customers_per_day": defaults.compromised_customers_per_day,
                   **MIXES[mix]}
        for name, count in per_day.items():
            params[name] = max(1, round(count * scale))
        params.update(overrides)
        return cls(**params)


# --- generation -------------------------------------------------------------------------
def _terminals_within_radius(customer_xy: np.ndarray, terminal_xy: np.ndarray,
                             radius: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR form of each customer's reachable terminals: (offsets, flat terminal indices)."""
    tree = cKDTree(terminal_xy)
    # A hair under the radius: the handbook keeps terminals strictly closer than r, KD-tree
    # balls are closed.
    lists = tree.query_ball_point(customer_xy, np.nextafter(radius, 0), return_sorted=True)
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    offsets = np.concatenate(([0], np.cumsum(counts)))
    flat = np.fromiter((t for x in lists for t in x), dtype=np.int64, count=int(offsets[-1]))
    return offsets, flat


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.array([f"{prefix}{i:06d}" for i in range(n)], dtype=object)


def simulate(config: SimulationConfig = SimulationConfig()) -> pd.DataFrame:
    """Generate transactions with fraud labels, sorted by event time (see :data:`COLUMNS`).

    The same config gives the same DataFrame, bit for bit.
    """
    c = config
    # Independent streams per stage, so e.g. changing the fraud scenarios leaves the
    # legitimate traffic unchanged.
    # Children are indexed: adding streams leaves the first five (the handbook's) unchanged.
    rng_cust, rng_term, rng_tx, rng_s2, rng_s3, rng_s4, rng_s5 = (
        np.random.default_rng(c.seed).spawn(7))

    cust_xy = rng_cust.uniform(0, c.grid_size, size=(c.n_customers, 2))
    mean_amount = rng_cust.uniform(*_MEAN_AMOUNT_RANGE, size=c.n_customers)
    std_amount = mean_amount / 2
    tx_per_day = rng_cust.uniform(*_TX_PER_DAY_RANGE, size=c.n_customers)
    term_xy = rng_term.uniform(0, c.grid_size, size=(c.n_terminals, 2))
    offsets, reachable = _terminals_within_radius(cust_xy, term_xy, c.radius)
    n_reachable = np.diff(offsets)

    # Customer-major, day-minor order: scenario 3 relies on each customer's rows being contiguous.
    per_day = rng_tx.poisson(tx_per_day[:, None], size=(c.n_customers, c.n_days))
    n = int(per_day.sum())
    cust = np.repeat(np.repeat(np.arange(c.n_customers), c.n_days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(c.n_days), c.n_customers), per_day.ravel())
    tod = np.trunc(rng_tx.normal(_TIME_OF_DAY_MEAN_S, _TIME_OF_DAY_STD_S, size=n))
    amount = rng_tx.normal(mean_amount[cust], std_amount[cust])
    negative = amount < 0
    amount[negative] = rng_tx.uniform(0, 2 * mean_amount[cust[negative]])
    pick = rng_tx.integers(0, np.maximum(n_reachable[cust], 1))

    # Clipping times to the day would pile ~1.5% of a day's traffic on 00:00:00 and 23:59:59
    # (and skew night features); the handbook drops those draws instead.
    keep = (tod > 0) & (tod < DAY_S) & (n_reachable[cust] > 0)
    cust, day, tod, amount = cust[keep], day[keep], tod[keep], np.round(amount[keep], 2)
    terminal = reachable[offsets[cust] + pick[keep]]
    n = len(cust)

    scenario = np.zeros(n, dtype=np.int8)
    scenario[amount > c.fraud_amount_threshold] = 1

    compromised = np.zeros((c.n_days, c.n_terminals), dtype=bool)
    for d in range(c.n_days):
        chosen = rng_s2.choice(c.n_terminals, size=c.compromised_terminals_per_day, replace=False)
        compromised[d:d + c.terminal_compromise_days, chosen] = True
    scenario[compromised[day, terminal]] = 2

    cust_start = np.searchsorted(cust, np.arange(c.n_customers + 1))
    for d in range(c.n_days):
        chosen = rng_s3.choice(c.n_customers, size=c.compromised_customers_per_day, replace=False)
        rows = np.concatenate([np.arange(cust_start[k], cust_start[k + 1]) for k in chosen]
                              + [np.empty(0, dtype=np.int64)])
        rows = rows[(day[rows] >= d) & (day[rows] < d + c.customer_compromise_days)]
        k_fraud = int(len(rows) * c.customer_fraud_share)
        hit = rng_s3.choice(rows, size=k_fraud, replace=False)
        # Sequential per day on purpose: a transaction hit on two days is multiplied twice,
        # exactly as in the handbook.
        amount[hit] = np.round(amount[hit] * c.customer_fraud_amount_factor, 2)
        scenario[hit] = 3

    ts = c.start_ts + day * DAY_S + tod
    added = [card_testing(c, rng_s4, mean_amount), account_takeover(c, rng_s5, mean_amount,
                                                                       cust_xy, term_xy)]
    for a_cust, a_term, a_ts, a_amount, a_scenario in added:
        cust, terminal = np.concatenate((cust, a_cust)), np.concatenate((terminal, a_term))
        ts, amount = np.concatenate((ts, a_ts)), np.concatenate((amount, a_amount))
        scenario = np.concatenate((scenario, a_scenario))
    n = len(ts)
    order = np.argsort(ts, kind="stable")
    return pd.DataFrame({
        "tx_id": pd.array([f"tx-{c.seed}-{i:09d}" for i in range(n)], dtype="str"),
        "ts": ts[order],
        "card_id": pd.array(_ids("c", c.n_customers)[cust[order]], dtype="str"),
        "terminal_id": pd.array(_ids("t", c.n_terminals)[terminal[order]], dtype="str"),
        "amount": amount[order],
        "is_fraud": scenario[order] > 0,
        "fraud_scenario": scenario[order],
    })


# --- the event stream -------------------------------------------------------------------
def events(df: pd.DataFrame, label_delay_days: float = 7.0,
           labels: Literal["all", "fraud_only"] = "all") -> Iterator[Event]:
    """Transactions and their later labels, interleaved in event-time order.

    Yields ``(kind, key, value, event_ts)`` with kind ``"transaction"`` or ``"label"`` and
    key the card_id. A label's ``ts`` is its transaction's ``ts`` plus the delay; on equal
    times a transaction comes before a label, so no label precedes its transaction.
    ``labels="fraud_only"`` emits labels for frauds only (chargebacks).

    >>> df = simulate(SimulationConfig(n_customers=20, n_terminals=50, n_days=2))
    >>> kind, key, value, ts = next(events(df))
    >>> kind, sorted(value)
    ('transaction', ['amount', 'card_id', 'terminal_id', 'ts', 'tx_id'])
    """
    if labels not in ("all", "fraud_only"):
        raise ValueError(f"labels must be 'all' or 'fraud_only', not {labels!r}")
    if label_delay_days < 0:
        raise ValueError("label_delay_days must be >= 0")
    if not df["ts"].is_monotonic_increasing:
        # tx_id breaks ties: simulated ids are numbered in event-time order.
        df = df.sort_values(["ts", "tx_id"], kind="stable")
    tx_ids = df["tx_id"].tolist()
    ts = df["ts"].to_numpy(dtype=np.float64)
    cards = df["card_id"].tolist()
    terminals = df["terminal_id"].tolist()
    amounts = df["amount"].tolist()
    fraud = df["is_fraud"].to_numpy(dtype=bool)

    labelled = np.flatnonzero(fraud) if labels == "fraud_only" else np.arange(len(df))
    label_ts = ts[labelled] + label_delay_days * DAY_S
    # Merge of two sorted arrays: label j goes after every transaction with ts <= its ts.
    label_pos = np.arange(len(labelled)) + np.searchsorted(ts, label_ts, side="right")
    is_label = np.zeros(len(ts) + len(labelled), dtype=bool)
    is_label[label_pos] = True

    tx_ts, lab_ts, lab_rows, fraud_l = ts.tolist(), label_ts.tolist(), labelled.tolist(), fraud.tolist()
    i = j = 0
    for label_next in is_label.tolist():
        if label_next:
            r = lab_rows[j]
            value = {"tx_id": tx_ids[r], "card_id": cards[r], "is_fraud": fraud_l[r], "ts": lab_ts[j]}
            yield "label", cards[r], value, lab_ts[j]
            j += 1
        else:
            value = {"tx_id": tx_ids[i], "ts": tx_ts[i], "card_id": cards[i],
                     "terminal_id": terminals[i], "amount": amounts[i]}
            yield "transaction", cards[i], value, tx_ts[i]
            i += 1


# --- summary ----------------------------------------------------------------------------
def summary(df: pd.DataFrame) -> str:
    """A one-screen, human-readable summary of a simulated DataFrame."""
    n = len(df)
    frauds = int(df["is_fraud"].sum())
    by_scenario = df.loc[df["is_fraud"], "fraud_scenario"].value_counts()
    lines = [
        f"transactions  {n:>12,}",
        f"frauds        {frauds:>12,}  ({frauds / n:.3%} of transactions)" if n else
        f"frauds        {frauds:>12,}",
    ]
    for s, name in SCENARIOS.items():
        k = int(by_scenario.get(s, 0))
        if s > 3 and not k:
            continue  # an optional scenario that is off
        share = f"  ({k / frauds:.1%} of frauds)" if frauds else ""
        lines.append(f"  scenario {s}  {k:>12,}{share}  {name}")
    lines += [
        f"cards         {df['card_id'].nunique():>12,}",
        f"terminals     {df['terminal_id'].nunique():>12,}",
    ]
    if n:
        lo, hi = float(df["ts"].min()), float(df["ts"].max())
        lines.append(f"time span     {utc_iso(lo)} .. {utc_iso(hi)}  ({(hi - lo) / DAY_S:.1f} days)")
    return "\n".join(lines)


# --- file sink --------------------------------------------------------------------------
_FORMATS = (".parquet", ".csv")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"cannot tell the file format of {str(path)!r}: the name must end in "
            f"{' or '.join(_FORMATS)} (got {suffix or 'no extension'!r})"
        )
    return suffix


def write_file(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a simulated DataFrame to ``.parquet`` or ``.csv`` (chosen by the extension)."""
    path = Path(path)
    if _format(path) == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def read_file(path: str | Path) -> pd.DataFrame:
    """Read back a file written by :func:`write_file`, with :data:`COLUMNS`' dtypes."""
    path = Path(path)
    if _format(path) == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{str(path)!r} is not a simulator file: missing columns {missing}")
    return df[list(COLUMNS)].astype(COLUMNS)
