"""The scoring stages without Kafka: validation, card/terminal state, redelivery."""

import json

import pandas as pd

from fraudstream.models.features import compute_features, feature_names
from fraudstream.stream.stages import (
    Message, apply_fraud, card_stage, group_by_partition, partition_for, terminal_entry,
    terminal_stage, triage,
)

DAY = 86400.0


class DictStore(dict):
    def put(self, partition, key, value):
        self[key] = value


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
    assert [r["features"]["card_count_1d"] for r in first.forward] == [0.0, 1.0, 2.0]
    assert first.forward[2]["features"]["card_mean_amount_1d"] == 15.0
    # the same messages again (a crash before the offset commit): same features, no double count
    again = card_stage(batch, cards, 65536, now=0.0)
    assert [r["features"] for r in again.forward] == [r["features"] for r in first.forward]
    assert len(cards["c1"]["state"]) == 3


def test_live_stages_match_offline_features():
    rows = [tx(i, card=f"c{i % 3}", terminal=f"t{i % 2}", ts=1767225600.0 + i * 7000.0,
               amount=float(i % 17)) for i in range(300)]
    frauds = {5, 40, 41, 120}
    delay = 2 * DAY
    cards, terminals = DictStore(), DictStore()
    out = []
    fraud_offset = 0
    for i, row in enumerate(rows):
        # labels of frauds arrive `delay` after their transaction, before later transactions
        for j in frauds:
            if rows[j]["ts"] + delay <= row["ts"] and not rows[j].get("_applied"):
                rows[j]["_applied"] = True
                apply_fraud(0, fraud_offset, rows[j]["terminal_id"], rows[j]["ts"], terminals)
                fraud_offset += 1
        stage = card_stage([msg({k: v for k, v in row.items() if k != "_applied"}, i)], cards,
                           65536, now=0.0)
        [rec] = stage.forward
        [done] = terminal_stage([(0, i, rec)], terminals, delay)
        out.append(done["features"])
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "_applied"} for r in rows])
    df["is_fraud"] = [i in frauds for i in range(len(rows))]
    offline = compute_features(df, delay)
    for name in feature_names():
        live = [f[name] for f in out]
        assert offline[name].tolist() == pytest_approx(live), name


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
    assert len(out.forward) + len(out.dead) == len(msgs)
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


def test_group_by_partition_keeps_order_and_co_partitioning():
    records = [{"terminal_id": f"t{i % 5}", "i": i} for i in range(40)]
    groups = group_by_partition(records, lambda r: r["terminal_id"], 8)
    assert sum(len(g) for g in groups.values()) == 40
    for p, group in groups.items():
        assert all(partition_for(r["terminal_id"], 8) == p for r in group)
        assert [r["i"] for r in group] == sorted(r["i"] for r in group)


class FlakyStore(DictStore):
    """A store whose read of one key raises, as a bug or a corrupt recovered value would."""

    def __init__(self, bad_key):
        super().__init__()
        self.bad_key = bad_key

    def get(self, key, default=None):
        if key == self.bad_key:
            raise RuntimeError("corrupt state for " + key)
        return super().get(key, default)


def test_a_record_whose_processing_raises_is_dead_lettered_and_the_batch_carries_on():
    cards = FlakyStore("c-bad")
    batch = [msg(tx(0, ts=1767225600.0), 0), msg(tx(1, card="c-bad", ts=1767225601.0), 1),
             msg(tx(2, ts=1767225602.0), 2)]
    out = card_stage(batch, cards, 65536, now=9.0)
    assert [r["tx_id"] for r in out.forward] == ["tx0", "tx2"]
    [dead] = out.dead
    assert dead.reason == "processing_error"
    assert dead.record["error"].startswith("processing_error: RuntimeError: corrupt state")
    assert dead.record["source"]["offset"] == 1

    terminals = FlakyStore("t-bad")
    records = [(0, i, {"tx_id": f"tx{i}", "terminal_id": t, "ts": 1767225600.0 + i,
                       "features": {}}) for i, t in enumerate(["t1", "t-bad", "t1"])]
    failed = []
    done = terminal_stage(records, terminals, 7 * DAY, failed)
    assert [r["tx_id"] for r in done] == ["tx0", "tx2"]
    assert [(r["tx_id"], type(e).__name__) for r, e in failed] == [("tx1", "RuntimeError")]


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
    assert out.forward[-1]["features"]["card_count_1d"] == 25.0  # the card's history survived
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
    assert len(out.forward) + len(out.dead) == len(msgs)
    assert all(d.reason != "processing_error" for d in out.dead), [d.record["error"] for d in out.dead]
    for rec in out.forward:  # whatever passes is finite and encodable
        assert all(abs(v) <= 1e9 for v in rec["features"].values())
        rec["card_id"].encode("utf-8"), rec["terminal_id"].encode("utf-8")


@hsettings(max_examples=200, deadline=None)
@given(st.lists(_hostile_record({"tx_id": "t", "card_id": "c1", "is_fraud": True,
                                 "ts": 1767225600.0}), min_size=1, max_size=6))
def test_the_label_handler_survives_surrogates_huge_numbers_and_deep_nesting(records):
    from fraudstream.stream.contract import parse_ts
    from fraudstream.stream.event_time import EventTimeGuard
    from fraudstream.stream.joiner import LabelJoiner

    class Store(DictStore):
        def delete(self, partition, key):
            self.pop(key, None)

    msgs = [Message("labels", 0, i, b"c1", _wire(r), 0.0) for i, r in enumerate(records)]
    valid, dead = triage("labels", msgs, 65536, 1_790_000_000.0,
                         clock=EventTimeGuard(86400.0, 40 * 86400.0))
    assert len(valid) + len(dead) == len(msgs)
    joiner = LabelJoiner(Store(), Store(), mode="all", maturity_s=7 * DAY)
    for m, label in valid:
        outcome, _ = joiner.on_label(m.partition, label, parse_ts(label["ts"]))
        assert outcome in ("joined", "waiting")
    joiner.expire()


def test_a_transaction_redelivered_through_a_new_by_terminal_message_is_counted_once():
    """After a crash the card stage forwards a transaction again, in a new by-terminal message
    at a new offset: the terminal state recognises it by its transactions (partition, offset)."""
    cards, terminals = DictStore(), DictStore()
    batch = [msg(tx(i, card=f"c{i}", ts=1767225600.0 + i * 60), i, partition=3) for i in range(4)]
    first = card_stage(batch, cards, 65536, now=0.0)
    done = terminal_stage([(5, 100 + i, r) for i, r in enumerate(first.forward)], terminals, DAY)
    assert len(terminals["t1"]["state"]) == 4
    assert [r["source"] for r in done] == [[3, i] for i in range(4)]

    # the card stage's offsets were not committed: offsets 2.. come again, plus a new one
    again = card_stage(batch[2:] + [msg(tx(4, card="c4", ts=1767225600.0 + 240), 4, partition=3)],
                       cards, 65536, now=0.0)
    terminal_stage([(5, 200 + i, r) for i, r in enumerate(again.forward)], terminals, DAY)
    assert len(terminals["t1"]["state"]) == 5  # tx2 and tx3 not again; tx4 added
    assert terminals["t1"]["sources"] == {"3": 4}
    # later transactions still count day-window features from the exact state
    [probe] = terminal_stage([(5, 300, {"terminal_id": "t1", "ts": 1767225600.0 + 2 * DAY,
                                        "features": {}, "source": [3, 5]})], terminals, DAY)
    assert probe["features"]["terminal_count_1d"] == 5.0

    # a fraud leaves the sources as they were; a recovered (JSON) value loads the same
    apply_fraud(5, 0, "t1", 1767225600.0, terminals)
    assert terminals["t1"]["sources"] == {"3": 5}
    recovered = json.loads(json.dumps({**terminals["t1"],
                                       "state": terminals["t1"]["state"].to_dict()}))
    entry = terminal_entry(recovered)
    assert entry.sources == {"3": 5} and entry.state == terminals["t1"]["state"]


def test_a_terminal_entry_written_before_sources_existed_still_loads_and_dedupes():
    from fraudstream.models.features import TerminalState

    state = TerminalState()
    state.add_transaction(1767225600.0)
    old = {"state": state.to_dict(), "tx_offset": 7, "fraud_offset": -1}  # no "sources"
    terminals = DictStore(t1=json.loads(json.dumps(old)))
    assert terminal_entry(terminals["t1"]).sources == {}
    rec = {"terminal_id": "t1", "ts": 1767225700.0, "features": {}}
    terminal_stage([(0, 7, dict(rec, features={}))], terminals, DAY)  # redelivered, no source
    assert len(terminal_entry(terminals["t1"]).state) == 1
    terminal_stage([(0, 8, dict(rec, features={}, source=[0, 12]))], terminals, DAY)
    entry = terminal_entry(terminals["t1"])
    assert len(entry.state) == 2 and entry.sources == {"0": 12} and entry.tx_offset == 8
