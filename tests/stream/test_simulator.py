"""Tests of the transaction simulator, its event stream and its sinks (no Kafka needed).

The bands below were measured, not guessed: over seeds 0-19 the defaults (5000 customers,
10000 terminals, 30 days) gave a fraud rate of 0.54%-0.61%, and shares of frauds of
8-11% (scenario 1), 49-57% (scenario 2) and 34-43% (scenario 3). With 183 days they
reproduce the handbook's figures (0.83% fraud; 7% / 61% / 32% by scenario). The "extended"
mix (5000 customers, 30 days, seeds 0-9) gave 0.98%-1.04% fraud and shares of 5-7%
(scenario 1), 30-32% (2), 20-23% (3), 24-25% (4, card testing), 17-19% (5, account takeover).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from fraudstream.stream.contract import validate
from fraudstream.stream.simulator import (
    COLUMNS,
    DEFAULT_START,
    MIXES,
    SCENARIOS,
    SimulationConfig,
    events,
    produce_to_kafka,
    read_file,
    simulate,
    summary,
    write_file,
)

SMALL = SimulationConfig(n_customers=1000, n_terminals=2000, n_days=20, seed=7)
DAY = 86_400.0


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def defaults() -> pd.DataFrame:
    # The full defaults take well under a second; measuring the bands on them is the honest test.
    return simulate(SimulationConfig())


# --- generation -------------------------------------------------------------------------
def test_same_seed_same_frame_and_different_seed_differs(small):
    pd.testing.assert_frame_equal(simulate(SMALL), small)
    other = simulate(SimulationConfig(n_customers=1000, n_terminals=2000, n_days=20, seed=8))
    cols = ["ts", "card_id", "amount"]
    assert not other[cols].head(1000).equals(small[cols].head(1000))
    assert other["tx_id"].iloc[0] == "tx-8-000000000"


def test_shape_and_invariants(small):
    assert list(small.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in small.dtypes.items()} == COLUMNS
    assert small["ts"].is_monotonic_increasing
    assert small["tx_id"].is_unique
    assert small["tx_id"].iloc[0] == "tx-7-000000000"
    assert small["card_id"].str.fullmatch(r"c\d{6}").all()
    assert small["terminal_id"].str.fullmatch(r"t\d{6}").all()
    assert (small["amount"] >= 0).all()
    assert np.allclose(small["amount"], small["amount"].round(2), rtol=0, atol=1e-9)
    assert small["ts"].min() >= DEFAULT_START
    assert small["ts"].max() < DEFAULT_START + SMALL.n_days * DAY
    assert (small["is_fraud"] == (small["fraud_scenario"] > 0)).all()
    assert set(small["fraud_scenario"].unique()) == {0, 1, 2, 3}


def test_defaults_fraud_rate_and_scenario_shares(defaults):
    assert 250_000 < len(defaults) < 330_000  # 5000 customers x 30 days x ~2 per day
    assert 0.004 <= defaults["is_fraud"].mean() <= 0.008
    shares = defaults.loc[defaults["is_fraud"], "fraud_scenario"].value_counts(normalize=True)
    assert 0.05 <= shares[1] <= 0.16
    assert 0.42 <= shares[2] <= 0.64
    assert 0.28 <= shares[3] <= 0.50


def test_scenarios_follow_their_rules(small):
    # Legitimate amounts never cross the scenario-1 threshold (a crossing is at least scenario 1).
    assert (small.loc[~small["is_fraud"], "amount"] <= SMALL.fraud_amount_threshold).all()
    assert (small.loc[small["fraud_scenario"] == 1, "amount"] > SMALL.fraud_amount_threshold).all()
    # At most k new terminals / cards are compromised per day.
    s2 = small[small["fraud_scenario"] == 2]
    assert s2["terminal_id"].nunique() <= SMALL.compromised_terminals_per_day * SMALL.n_days
    s3 = small[small["fraud_scenario"] == 3]
    assert s3["card_id"].nunique() <= SMALL.compromised_customers_per_day * SMALL.n_days


def test_fraud_scenarios_leave_legitimate_traffic_unchanged(small):
    calm = simulate(SimulationConfig(
        n_customers=1000, n_terminals=2000, n_days=20, seed=7, fraud_amount_threshold=float("inf"),
        compromised_terminals_per_day=0, compromised_customers_per_day=0,
    ))
    assert not calm["is_fraud"].any()
    cols = ["tx_id", "ts", "card_id", "terminal_id"]
    pd.testing.assert_frame_equal(calm[cols], small[cols])
    not_s3 = small["fraud_scenario"] != 3
    assert (calm.loc[not_s3, "amount"] == small.loc[not_s3, "amount"]).all()
    assert (small.loc[~not_s3, "amount"] >= calm.loc[~not_s3, "amount"]).all()


@pytest.fixture(scope="module")
def extended() -> pd.DataFrame:
    return simulate(SimulationConfig.scaled(5000, mix="extended"))


def test_the_default_mix_is_the_handbooks_three(defaults):
    assert set(defaults["fraud_scenario"].unique()) == {0, 1, 2, 3}
    assert MIXES["handbook"] == {} and SimulationConfig.scaled(5000) == SimulationConfig()
    assert "card testing" not in summary(defaults)


def test_extended_mix_fraud_rate_and_scenario_shares(extended):
    assert 0.008 <= extended["is_fraud"].mean() <= 0.012
    shares = extended.loc[extended["is_fraud"], "fraud_scenario"].value_counts(normalize=True)
    assert 0.03 <= shares[1] <= 0.10
    assert 0.24 <= shares[2] <= 0.37
    assert 0.16 <= shares[3] <= 0.28
    assert 0.20 <= shares[4] <= 0.30
    assert 0.13 <= shares[5] <= 0.24
    text = summary(extended)
    assert SCENARIOS[4] in text and SCENARIOS[5] in text


def test_card_testing_is_probes_then_one_large_amount(extended):
    c = SimulationConfig.scaled(5000, mix="extended")
    s4 = extended[extended["fraud_scenario"] == 4]
    assert s4["is_fraud"].all()
    assert len(s4) == c.card_testing_per_day * c.n_days * (c.card_testing_probes + 1)
    bursts = 0
    for _, card in s4.groupby("card_id"):
        for burst in _bursts(card, gap=3 * 3600.0):
            bursts += 1
            amounts = burst["amount"].to_numpy()
            # Each burst: probes of at most 3, then a cash-out far above them, within 2 hours.
            n_probes = c.card_testing_probes
            assert len(amounts) % (n_probes + 1) == 0
            assert (amounts[:n_probes] <= 3.0).all() and amounts[n_probes] > 3 * amounts[:n_probes].max()
            assert burst["ts"].iloc[-1] - burst["ts"].iloc[0] < 2 * 3600.0
    assert bursts >= 0.9 * c.card_testing_per_day * c.n_days  # a rare overlap merges two


def _bursts(card: pd.DataFrame, gap: float):
    ts = card["ts"].to_numpy()
    cuts = np.flatnonzero(np.diff(ts) > gap) + 1
    return [card.iloc[a:b] for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(card)])]


def test_account_takeover_pays_where_the_owner_never_does(extended):
    s5 = extended[extended["fraud_scenario"] == 5]
    assert s5["is_fraud"].all() and len(s5) > 100
    owner = extended[extended["fraud_scenario"] == 0]
    owned = set(zip(owner["card_id"], owner["terminal_id"]))
    assert not any(pair in owned for pair in zip(s5["card_id"], s5["terminal_id"]))
    # Larger than the owner's usual amounts: at least twice the card's legitimate median.
    medians = owner.groupby("card_id")["amount"].median()
    ratio = s5["amount"].to_numpy() / medians.reindex(s5["card_id"]).to_numpy()
    assert np.nanmedian(ratio) > 2.0
    # At any hour, night included (the owner's traffic is centred on noon).
    hours = (s5["ts"] % DAY) // 3600
    assert (hours < 6).mean() > 0.15


def test_added_scenarios_leave_the_handbook_traffic_unchanged(small):
    more = simulate(SimulationConfig(n_customers=1000, n_terminals=2000, n_days=20, seed=7,
                                     card_testing_per_day=2, account_takeover_per_day=2))
    base = more[more["fraud_scenario"] < 4].drop(columns="tx_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(base, small.drop(columns="tx_id").reset_index(drop=True))
    assert more["tx_id"].is_unique and more["ts"].is_monotonic_increasing
    assert more["ts"].max() < DEFAULT_START + 20 * DAY


def test_start_as_datetime_and_config_validation():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert SimulationConfig(start=start).start_ts == DEFAULT_START
    with pytest.raises(ValueError, match="naive datetime"):
        SimulationConfig(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="n_days must be >= 1"):
        SimulationConfig(n_days=0)
    with pytest.raises(ValueError, match="card_testing_per_day"):
        SimulationConfig(card_testing_per_day=-1)
    with pytest.raises(ValueError, match="mix must be one of"):
        SimulationConfig.scaled(100, mix="everything")


# --- events -----------------------------------------------------------------------------
def test_events_interleave_in_time_order_and_labels_follow_their_transaction(small):
    seen: dict[str, float] = {}
    last_ts = -1.0
    n_tx = n_labels = 0
    for kind, key, value, ts in events(small, label_delay_days=7.0):
        assert ts >= last_ts and ts == value["ts"] and key == value["card_id"]
        last_ts = ts
        if kind == "transaction":
            assert set(value) == {"tx_id", "ts", "card_id", "terminal_id", "amount"}
            seen[value["tx_id"]] = ts
            n_tx += 1
        else:
            assert kind == "label"
            assert set(value) == {"tx_id", "card_id", "is_fraud", "ts"}
            assert value["tx_id"] in seen, "label before its transaction"
            assert value["ts"] - seen[value["tx_id"]] == 7.0 * DAY
            n_labels += 1
    assert n_tx == n_labels == len(small)


@pytest.mark.parametrize("delay_days", [0.0, 0.5])
def test_label_delay_is_exact_even_when_zero(small, delay_days):
    head = small.head(3000)
    tx_ts = dict(zip(head["tx_id"], head["ts"]))
    seen = set()
    for kind, _, value, _ in events(head, label_delay_days=delay_days):
        if kind == "transaction":
            seen.add(value["tx_id"])
        else:
            assert value["tx_id"] in seen
            assert value["ts"] - tx_ts[value["tx_id"]] == delay_days * DAY


def test_fraud_only_emits_only_fraud_labels(small):
    labels = [v for k, _, v, _ in events(small, 7.0, labels="fraud_only") if k == "label"]
    assert len(labels) == int(small["is_fraud"].sum())
    assert all(v["is_fraud"] is True for v in labels)


def test_events_sorts_an_unsorted_frame_and_rejects_bad_mode(small):
    head = small.head(500)
    shuffled = head.sample(frac=1.0, random_state=0)
    assert list(events(shuffled, 1.0)) == list(events(head, 1.0))
    with pytest.raises(ValueError, match="fraud_only"):
        next(events(head, 1.0, labels="some"))


def test_event_values_satisfy_the_contract(small):
    for kind, _, value, _ in events(small.head(200), 1.0):
        assert validate(kind + "s", value) == []
        json.dumps(value, allow_nan=False)


# --- summary and file sink --------------------------------------------------------------
def test_summary_mentions_counts(small):
    text = summary(small)
    frauds = small["is_fraud"].sum()
    assert f"{len(small):,}" in text and f"{frauds:,}" in text
    for s in (1, 2, 3):
        assert f"scenario {s}" in text
    assert f"{small['card_id'].nunique():,}" in text
    assert "2026-01-01T" in text and "days" in text
    assert len(text.splitlines()) <= 24


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_file_round_trips(small, tmp_path, suffix):
    head = small.head(2000)
    path = write_file(head, tmp_path / f"tx{suffix}")
    pd.testing.assert_frame_equal(read_file(path), head)


def test_write_file_rejects_unknown_extension(small, tmp_path):
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_file(small.head(5), tmp_path / "tx.json")


# --- Kafka sink logic, with a recording producer and a fake clock ----------------------
class _Recorder:
    """Stands in for KafkaProducer to test encoding, pacing and counting (not delivery)."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = False

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))

    def flush(self):
        self.flushed = True


class _Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


TOPICS = {"transaction": "tx-topic", "label": "label-topic"}


def test_produce_sends_contract_json_keyed_by_card(small):
    head = small.head(300)
    rec, clock = _Recorder(), _Clock()
    counts = produce_to_kafka(events(head, 1.0, labels="fraud_only"), "unused:9092", TOPICS,
                              producer=rec, clock=clock, sleep=clock.sleep)
    assert counts == {"transactions": 300, "labels": int(head["is_fraud"].sum())}
    assert rec.flushed and not clock.sleeps
    topic, key, value = rec.sent[0]
    decoded = json.loads(value.decode("utf-8"))
    assert topic == "tx-topic" and key == decoded["card_id"].encode("utf-8")
    assert decoded == {k: head.iloc[0][k] for k in ("tx_id", "ts", "card_id", "terminal_id", "amount")}


def test_produce_paces_by_speed_and_rate_in_chunks(small):
    head = small.head(2000)
    span = head["ts"].iloc[-1] - head["ts"].iloc[0]
    clock = _Clock()
    produce_to_kafka(events(head, 0.0, labels="fraud_only"), "unused:9092", TOPICS,
                     speed=span / 4.0, producer=_Recorder(), clock=clock, sleep=clock.sleep)
    assert sum(clock.sleeps) == pytest.approx(4.0, abs=0.06)
    assert len(clock.sleeps) < 100  # chunks, not one sleep per message

    clock = _Clock()
    produce_to_kafka(events(head, 1.0, labels="fraud_only"), "unused:9092", TOPICS,
                     rate=1000.0, producer=_Recorder(), clock=clock, sleep=clock.sleep)
    assert sum(clock.sleeps) == pytest.approx(1.999, abs=0.06)
    assert len(clock.sleeps) < 60


def test_produce_reports_progress_and_refuses_bad_values(small):
    clock = _Clock()
    reports: list[dict] = []
    produce_to_kafka(events(small.head(500), 0.0), "unused:9092", TOPICS, rate=100.0,
                     progress=reports.append, producer=_Recorder(), clock=clock, sleep=clock.sleep)
    assert 3 <= len(reports) <= 8 and reports[-1] == {"transactions": 500, "labels": 500}

    bad = [("transaction", "c1", {"tx_id": "x", "ts": 1.0, "card_id": "c1", "amount": -1.0}, 1.0)]
    rec = _Recorder()
    with pytest.raises(ValueError, match="breaks the contract"):
        produce_to_kafka(iter(bad), "unused:9092", TOPICS, producer=rec)
    assert rec.sent == []
