"""The scoring stage without Kafka: validation, card state, the terminal replica, redelivery."""

import json
import random

import pandas as pd

from fraudstream.models.features import compute_features, feature_names
from fraudstream.stream.stages import Message, feature_stage, partition_for, triage
from fraudstream.stream.terminal_view import TerminalView
from store_fakes import DictStore

DAY = 86400.0


def card_stage(batch, cards, max_bytes, now, view=None, **kw):
    return feature_stage(batch, cards, view if view is not None else TerminalView(7 * DAY),
                         max_bytes, now, **kw)


def msg(value, offset, key=None, partition=0):
    raw = json.dumps(value).encode() if isinstance(value, dict) else value
    if key is None and isinstance(value, dict):
        key = value["card_id"].encode()
    return Message("transactions", partition, offset, key, raw, 1000.0)


def tx(i, card="c1", terminal="t1", ts=0.0, amount=10.0):
    return {"tx_id": f"tx{i}", "ts": ts, "card_id": card, "terminal_id": terminal, "amount": amount}


def test_triage_routes_each_bad_message_with_source_and_reason():
    good = msg(tx(1, ts=1767225600.0), 0)
    bad = [msg(b"{", 1, key=b"c1"), msg(tx(2) | {"amount": -1}, 2),
           msg(tx(3, ts=1767225600.0), 3, key=b"someone-else")]
    valid, dead = triage("transactions", [good, *bad], 65536, now=5.0)
    assert [m.offset for m, _ in valid] == [0]
    assert [d.record["source"]["offset"] for d in dead] == [1, 2, 3]
    assert [d.reason for d in dead] == ["malformed_json", "schema", "key_mismatch"]


def test_card_stage_features_use_only_earlier_events_and_redelivery_is_idempotent():
    cards = DictStore()
    batch = [msg(tx(i, ts=1767225600.0 + i * 3600, amount=10.0 * (i + 1)), i) for i in range(3)]
    first = card_stage(batch, cards, 65536, now=0.0)
    assert [r.features["card_count_1d"] for r in first.records] == [0.0, 1.0, 2.0]
    assert first.records[2].features["card_mean_amount_1d"] == 15.0
    # the same messages again (a crash before the offset commit): same features, no double count
    again = card_stage(batch, cards, 65536, now=0.0)
    assert [r.features for r in again.records] == [r.features for r in first.records]
    assert len(cards["c1"]["state"]) == 3


def test_live_stages_match_offline_features():
    rows = [tx(i, card=f"c{i % 3}", terminal=f"t{i % 2}", ts=1767225600.0 + i * 7000.0,
               amount=float(i % 17)) for i in range(300)]
    frauds = {5, 40, 41, 120}
    delay = 2 * DAY
    cards, view = DictStore(), TerminalView(delay)
    out = []
    for i, row in enumerate(rows):
        # labels of frauds arrive `delay` after their transaction, before later transactions
        for j in frauds:
            if rows[j]["ts"] + delay <= row["ts"]:
                view.add_fraud(rows[j]["terminal_id"], rows[j]["ts"], rows[j]["tx_id"])  # once
        [rec] = feature_stage([msg(row, i)], cards, view, 65536, now=0.0).records
        out.append(rec.features)
    df = pd.DataFrame(rows)
    df["is_fraud"] = [i in frauds for i in range(len(rows))]
    offline = compute_features(df, delay)
    for name in feature_names():
        live = [f[name] for f in out]
        assert offline[name].tolist() == pytest_approx(live), name


def test_live_matches_offline_for_out_of_order_and_redelivered_records():
    """Every feature of every scored record (both sets) equals the offline definition over
    the records the worker had applied before it, plus itself: late records see the history
    they arrive to, and a redelivered message is not applied twice."""
    rng = random.Random(5)
    delay = 3 * 3600.0  # longer than the lateness, as the contract's bounds make it
    rows = [tx(i, card=f"c{i % 3}", terminal=f"t{rng.randrange(4)}",
               ts=1767225600.0 + i * 150.0 + rng.choice([0.0, 0.0, 0.5]),
               amount=round(rng.uniform(0.2, 200.0), 2)) for i in range(240)]
    # Mostly in event-time order; a tenth of the records arrive up to two hours late.
    late = {i: rng.uniform(0, 7200.0) if rng.random() < 0.1 else 0.0 for i in range(len(rows))}
    arrival = sorted(range(len(rows)), key=lambda i: rows[i]["ts"] + late[i])
    assert arrival != sorted(arrival)
    frauds = {i for i in range(len(rows)) if i % 17 == 5}
    # The last 40 messages again (a crash before their offsets were committed).
    deliveries = [(k, i) for k, i in enumerate(arrival)] + [(k, arrival[k])
                                                            for k in range(200, 240)]
    for feature_set in ("extended", "handbook"):
        names = feature_names(feature_set=feature_set)
        cards, view = DictStore(), TerminalView(delay)
        applied: list[int] = []
        seen: list[dict] = []
        for offset, i in deliveries:
            row = rows[i]
            for j in applied:  # labels of frauds are known `delay` after their transaction
                if j in frauds and rows[j]["ts"] + delay <= row["ts"]:
                    view.add_fraud(rows[j]["terminal_id"], rows[j]["ts"], rows[j]["tx_id"])
            [rec] = feature_stage([msg(row, offset)], cards, view, 65536, now=0.0,
                                  feature_set=feature_set).records
            if i not in applied:
                applied.append(i)
            df = pd.DataFrame([rows[j] for j in applied])
            df["is_fraud"] = [j in frauds for j in applied]
            expected = compute_features(df, delay, feature_set=feature_set)
            expected = expected[expected["tx_id"] == row["tx_id"]].iloc[0]
            for name in names:
                assert abs(rec.features[name] - expected[name]) <= 1e-9, (i, name)
            seen.append(rec.features)
        assert sum(len(e["state"]) for e in cards.values()) == len(rows)
        # The stream exercises the windows: short card windows, terminal counts and ratios.
        assert sum(f["terminal_fraud_ratio_1d"] > 0 for f in seen) > 20
        if feature_set == "extended":
            assert sum(f["card_count_10m"] > 0 for f in seen) > 20
            assert sum(f["card_terminal_new_30d"] == 0 for f in seen) > 20


def test_replicas_fed_the_same_events_in_any_order_and_twice_agree():
    """The scoring worker applies its own events at once; another worker reads them from the
    topic, possibly after a redelivered copy, in another order: both end with the same state."""
    delay = DAY
    rows = [tx(i, card=f"c{i % 4}", terminal=f"t{i % 3}", ts=1767225600.0 + i * 900.0)
            for i in range(200)]
    mine = TerminalView(delay)
    out = feature_stage([msg(r, i, partition=2) for i, r in enumerate(rows)], DictStore(), mine,
                        65536, now=0.0)
    messages = out.events.messages(lambda t: partition_for(t, 4))
    assert sum(len(orjson_loads(v)["tx"]) for v in messages.values()) == 200

    other = TerminalView(delay)
    for offset, (p, value) in enumerate(sorted(messages.items(), reverse=True)):
        other.apply(p, offset, value)
        other.apply(p, offset + 100, value)  # redelivered copy
    assert other.offsets  # it knows where to resume
    for t in ("t0", "t1", "t2"):
        assert other.terminals[t] == mine.terminals[t]
        probe = 1767225600.0 + 5 * DAY
        assert other.features(t, probe) == mine.features(t, probe)
        assert other.features(t, probe)["terminal_count_7d"] == len([r for r in rows
                                                                     if r["terminal_id"] == t])


def orjson_loads(value):
    import orjson

    return orjson.loads(value)


def pytest_approx(values):
    import pytest

    return pytest.approx(values, abs=1e-9)


# --- property: nothing a producer sends can crash the card stage or vanish ---------------
from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_tx_like = st.fixed_dictionaries(
    {}, optional={"tx_id": _json_values, "ts": _json_values | st.floats(0, 4e9),
                  "card_id": st.just("c1") | _json_values, "terminal_id": _json_values,
                  "amount": _json_values | st.floats(-10, 1e6), "features": _json_values})
_payloads = (st.binary(max_size=200)
             | _tx_like.map(lambda d: __import__("json").dumps(d).encode())
             | st.none())


@hsettings(max_examples=300, deadline=None)
@given(st.lists(_payloads, min_size=1, max_size=8))
def test_card_stage_never_raises_and_accounts_for_every_message(payloads):
    msgs = [Message("transactions", 0, i, b"c1", p, 0.0) for i, p in enumerate(payloads)]
    out = card_stage(msgs, DictStore(), 65536, now=0.0)
    assert len(out.records) + len(out.dead) == len(msgs)
    for d in out.dead:
        assert d.record["error"] and d.record["source"]["offset"] in range(len(msgs))


def test_partition_for_matches_the_kafka_client_partitioner():
    from kafka.partitioner.default import DefaultPartitioner

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return set(range(8))

        available_partitions_for_topic = partitions_for_topic

    kafka = DefaultPartitioner()
    for key in [f"c{i:06d}" for i in range(500)] + ["", "é", "t000042"]:
        raw = key.encode()
        assert partition_for(key, 8) == kafka.partition("t", raw, raw, None, None, Cluster())


class FlakyStore(DictStore):
    """A store whose read of one key raises, as a bug or a corrupt recovered value would."""

    def __init__(self, bad_key):
        super().__init__()
        self.bad_key = bad_key

    def get(self, partition, key, default=None):
        if key == self.bad_key:
            raise RuntimeError("corrupt state for " + key)
        return super().get(partition, key, default)


def test_a_record_whose_processing_raises_is_dead_lettered_and_the_batch_carries_on():
    cards = FlakyStore("c-bad")
    batch = [msg(tx(0, ts=1767225600.0), 0), msg(tx(1, card="c-bad", ts=1767225601.0), 1),
             msg(tx(2, ts=1767225602.0), 2)]
    out = card_stage(batch, cards, 65536, now=9.0)
    assert [r.tx_id for r in out.records] == ["tx0", "tx2"]
    [dead] = out.dead
    assert dead.reason == "processing_error"
    assert dead.record["error"].startswith("processing_error: RuntimeError: corrupt state")
    assert dead.record["source"]["offset"] == 1

    assert [r[0] for r in out.events.transactions] == ["t1", "t1"]  # the dead one is not sent


def test_the_event_time_guard_dead_letters_a_far_future_transaction_without_moving_state():
    from fraudstream.stream.event_time import EventTimeGuard

    clock = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    cards = DictStore()
    start = 1767225600.0
    batch = [msg(tx(i, ts=start + i * 60.0), i) for i in range(25)]
    batch.append(msg(tx(99, ts=7_000_000_000.0), 25))  # the year 2191, same card
    batch.append(msg(tx(100, ts=start + 3600.0), 26))
    out = card_stage(batch, cards, 65536, now=1_790_000_000.0, clock=clock)
    [dead] = out.dead
    assert dead.reason == "ts_skew" and "FRAUDSTREAM_MAX_FUTURE_SKEW_S" in dead.record["error"]
    assert out.records[-1].features["card_count_1d"] == 25.0  # the card's history survived
    assert len(cards["c1"]["state"]) == 26


# Hostile values for every field: lone surrogates, huge finite floats, huge ints, deep nesting.
_surrogate_text = st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
                          | st.sampled_from("ac1-"), min_size=1, max_size=6)
_hostile_values = (_surrogate_text | st.sampled_from([1e308, -1e308, 10**400, 0, True, None])
                   | st.integers(1, 400).map(lambda d: __import__("json").loads("[" * d + "]" * d)))


def _hostile_record(base: dict):
    return st.dictionaries(st.sampled_from(sorted(base) + ["x"]), _hostile_values, max_size=3).map(
        lambda changed: {**base, **changed})


def _wire(value: dict) -> bytes:
    import json

    try:
        return json.dumps(value).encode()  # ensure_ascii: a surrogate travels as \ud800
    except (ValueError, RecursionError):
        return b"[" * 5000  # what json.dumps cannot write, a producer still can


@hsettings(max_examples=200, deadline=None)
@given(st.lists(_hostile_record({"tx_id": "t", "ts": 1767225600.0, "card_id": "c1",
                                 "terminal_id": "t1", "amount": 5.0}), min_size=1, max_size=6))
def test_card_stage_survives_surrogates_huge_numbers_and_deep_nesting(records):
    from fraudstream.stream.event_time import EventTimeGuard

    msgs = [Message("transactions", 0, i, b"c1", _wire(r), 0.0) for i, r in enumerate(records)]
    out = card_stage(msgs, DictStore(), 65536, now=1_790_000_000.0,
                     clock=EventTimeGuard(86400.0, 40 * 86400.0))
    assert len(out.records) + len(out.dead) == len(msgs)
    assert all(d.reason != "processing_error" for d in out.dead), [d.record["error"] for d in out.dead]
    for rec in out.records:  # whatever passes is finite and encodable
        assert all(abs(v) <= 1e9 for v in rec.features.values())
        rec.card_id.encode("utf-8"), rec.terminal_id.encode("utf-8")


@hsettings(max_examples=200, deadline=None)
@given(st.lists(_hostile_record({"tx_id": "t", "card_id": "c1", "is_fraud": True,
                                 "ts": 1767225600.0}), min_size=1, max_size=6))
def test_the_label_handler_survives_surrogates_huge_numbers_and_deep_nesting(records):
    from fraudstream.stream.contract import parse_ts
    from fraudstream.stream.event_time import EventTimeGuard
    from fraudstream.stream.joiner import LabelJoiner

    Store = DictStore
    msgs = [Message("labels", 0, i, b"c1", _wire(r), 0.0) for i, r in enumerate(records)]
    valid, dead = triage("labels", msgs, 65536, 1_790_000_000.0,
                         clock=EventTimeGuard(86400.0, 40 * 86400.0))
    assert len(valid) + len(dead) == len(msgs)
    joiner = LabelJoiner(Store(), Store(), mode="all", maturity_s=7 * DAY)
    for m, label in valid:
        outcome, _ = joiner.on_label(m.partition, label, parse_ts(label["ts"]))
        assert outcome in ("joined", "waiting")
    joiner.expire()


def test_a_redelivered_transaction_is_counted_once_by_card_and_terminal():
    """After a crash the new owner scores the uncommitted transactions again: the card state
    knows their offsets, the replica their source positions (read back from the topic)."""
    cards, view = DictStore(), TerminalView(DAY)
    batch = [msg(tx(i, card=f"c{i % 2}", ts=1767225600.0 + i * 60), i, partition=3)
             for i in range(4)]
    first = feature_stage(batch, cards, view, 65536, now=0.0)
    assert len(view.terminals["t1"]) == 4 and len(first.events.transactions) == 4

    # a restarted worker: its card state came back from RocksDB, its replica from the topic
    replica = TerminalView(DAY)
    for p, value in first.events.messages(lambda t: 0).items():
        replica.apply(p, 0, value)
    again = feature_stage(batch[2:] + [msg(tx(4, card="c0", ts=1767225600.0 + 240), 4,
                                           partition=3)], cards, replica, 65536, now=0.0)
    assert [r.features for r in again.records[:2]] == [r.features for r in first.records[2:]]
    assert len(replica.terminals["t1"]) == 5  # tx2 and tx3 not again; tx4 added
    assert [e[2] for e in again.events.transactions] == [(3 << 40) | 4]  # only the new one sent
    assert len(cards["c0"]["state"]) == 3
    probe = feature_stage([msg(tx(5, card="c9", ts=1767225600.0 + 2 * DAY), 5, partition=3)],
                          cards, replica, 65536, now=0.0)
    assert probe.records[0].features["terminal_count_1d"] == 5.0


def test_a_fraud_label_joined_twice_counts_once():
    view = TerminalView(DAY)
    assert view.add_fraud("t1", 1767225600.0, "tx1")
    assert not view.add_fraud("t1", 1767225600.0, "tx1")
    assert view.terminals["t1"].n_frauds == 1


def test_malformed_terminal_events_are_skipped_and_counted():
    view = TerminalView(DAY)
    good = b'{"tx":[["t1",1767225600.0,7]],"fraud":[["t1",1767225600.0,"tx9"]]}'
    bad = [None, b"{", b'{"tx":3,"fraud":[]}',
           b'{"tx":[["t1","x",1],["",1.0,2],["t1",1.0,true]],"fraud":[["t1",1.0,5]]}']
    for i, value in enumerate(bad + [good]):
        view.apply(0, i, value)
    assert view.rejected == 3 + 4  # three whole messages, four events of the fourth
    assert len(view.terminals["t1"]) == 1 and view.terminals["t1"].n_frauds == 1
    assert view.offsets == {0: 5}


def test_long_keys_are_partitioned_alike_but_never_cached():
    from kafka.partitioner.default import murmur2

    from fraudstream.stream.stages import _cached_partition, key_partition

    before = _cached_partition.cache_info().currsize
    for i in range(50):
        key = b"k" * 1000 + str(i).encode()  # a dead letter keeps up to 1 KiB of a key
        assert key_partition(key, 8) == (murmur2(key) & 0x7FFFFFFF) % 8
    assert _cached_partition.cache_info().currsize == before
    assert key_partition(b"card-1", 8) == (murmur2(b"card-1") & 0x7FFFFFFF) % 8
