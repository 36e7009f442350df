"""Valid and invalid examples for every topic of the wire contract."""

import base64
import json

import pytest
from hypothesis import given, settings, strategies as st

from fraudstream.stream.contract import (
    KINDS, ContractError, dead_letter, decode, encode, parse_ts, schema, validate,
)

VALID = {
    "transactions": {"tx_id": "tx-1", "ts": "2026-01-01T10:00:00Z", "card_id": "c1",
                     "terminal_id": "t1", "amount": 12.5, "features": {"mcc_risk": 0.3}},
    "labels": {"tx_id": "tx-1", "card_id": "c1", "is_fraud": True, "ts": 1767261600},
    "scores": {"tx_id": "tx-1", "card_id": "c1", "score": 0.91, "decision": "decline",
               "model_version": "online-1", "event_ts": 1767261600.0, "scored_at": 1767261600.2,
               "models": {"online": 0.91}, "reasons": [{"feature": "amount", "value": 12.5,
                                                        "contribution": 1.2}]},
    "dlq": dead_letter("malformed JSON", b"{", "transactions", 3, 42, b"c1", 1767261600.0),
    "training-examples": {"tx_id": "tx-1", "card_id": "c1", "event_ts": 1767261600.0,
                          "features": {"amount": 12.5}, "is_fraud": False,
                          "label_ts": 1767866400.0, "label_source": "matured"},
    "model-updates": {"version": "batch-20260101-0001", "artifact": "/registry/batch/x",
                      "sha256": "a" * 64, "metrics": {"average_precision": 0.7},
                      "role": "champion", "action": "promote"},
    "synthetic-frauds": {"synthetic": True, "version": "v0001-20260101T000000Z",
                         "features": {"amount": 12.5}, "at": 1767261600.0},
    "control": {"command": "retrain", "request_id": "abc", "reason": "test", "at": 1767261600.0},
}

INVALID = {
    "transactions": [
        ({"ts": 1, "card_id": "c", "terminal_id": "t", "amount": 1}, "tx_id"),
        ({**VALID["transactions"], "amount": -0.01}, "amount"),
        ({**VALID["transactions"], "amount": "12"}, "amount"),
        ({**VALID["transactions"], "ts": "yesterday"}, "ts"),
        ({**VALID["transactions"], "ts": "2026-01-01T10:00:00"}, "no time zone"),
        ({**VALID["transactions"], "ts": 1767261600000}, "milliseconds"),
        ({**VALID["transactions"], "amount": float("nan")}, "finite"),
        ({**VALID["transactions"], "features": {"x": "high"}}, "features.x"),
        ({**VALID["transactions"], "card_id": ""}, "card_id"),
    ],
    "labels": [
        ({**VALID["labels"], "is_fraud": 1}, "is_fraud"),
        ({k: v for k, v in VALID["labels"].items() if k != "card_id"}, "card_id"),
    ],
    "scores": [
        ({**VALID["scores"], "score": 1.5}, "score"),
        ({**VALID["scores"], "decision": "maybe"}, "decision"),
    ],
    "dlq": [({"error": "x", "payload_b64": "", "at": 1}, "source")],
    "training-examples": [({**VALID["training-examples"], "features": {"a": None}}, "features.a")],
    "model-updates": [({**VALID["model-updates"], "sha256": "xyz"}, "sha256"),
                      ({**VALID["model-updates"], "role": "boss"}, "role")],
    "synthetic-frauds": [({**VALID["synthetic-frauds"], "synthetic": False}, "synthetic"),
                         ({**VALID["synthetic-frauds"], "features": {"a": "x"}}, "features.a")],
    "control": [({**VALID["control"], "command": "format-disk"}, "command"),
                ({**VALID["control"], "extra": 1}, "extra")],
}


def test_every_kind_has_a_schema_and_examples():
    assert set(VALID) == set(KINDS) == set(INVALID)
    for kind in KINDS:
        assert schema(kind)["type"] == "object"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_valid_examples_pass(kind):
    from fraudstream.stream.contract import _passes_compiled_check

    assert validate(kind, VALID[kind]) == []
    assert _passes_compiled_check(kind, VALID[kind])  # valid records take the fast path
    assert decode(kind, encode(kind, VALID[kind])).value == VALID[kind]


@pytest.mark.parametrize(
    "kind,value,fragment", [(k, v, f) for k, cases in INVALID.items() for v, f in cases]
)
def test_invalid_examples_fail_with_a_reason(kind, value, fragment):
    errors = validate(kind, value)
    assert errors and fragment in "; ".join(errors)
    with pytest.raises(ContractError):
        encode(kind, value)


@pytest.mark.parametrize("raw,fragment", [
    (None, "empty"),
    (b"{not json", "malformed JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"tx_id":"a","ts":1,"card_id":"c","terminal_id":"t","amount":NaN}', "finite"),
    (b'{"tx_id":"a","ts":1,"card_id":"c","terminal_id":"t","amount":Infinity}', "finite"),
    (b'{"tx_id":"a","ts":1,"card_id":"c","terminal_id":"t","amount":1e999}', "finite"),
    (b"[1,2]", "JSON object"),
    (b"[" * 5000 + b"]" * 5000, "JSON"),
    (b"x" * 70000, "over the"),
])
def test_decode_reports_bad_bytes(raw, fragment):
    out = decode("transactions", raw, max_bytes=65536)
    assert not out.ok and fragment in out.error


def test_parse_ts_accepts_rfc3339_offsets_and_epoch():
    assert parse_ts("2026-01-01T01:00:00+01:00") == parse_ts("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_ts(1767225600.5) == 1767225600.5


def test_dead_letter_keeps_the_original_bytes():
    raw = b"\x00\x01 not json"
    record = dead_letter("bad", raw, "transactions", 1, 7, None, 1.0)
    assert validate("dlq", record) == []
    assert base64.b64decode(record["payload_b64"]) == raw


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(raw):
    out = decode("transactions", raw)
    assert out.ok == (out.value is not None) and (out.ok or out.error)


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["tx_id", "ts", "card_id", "terminal_id", "amount", "features", "other"]),
    _json, max_size=7))
def test_decode_never_raises_on_arbitrary_json(value):
    raw = json.dumps(value).encode()
    out = decode("transactions", raw)
    if out.ok:
        assert validate("transactions", out.value) == []
    else:
        assert out.error


def _mutations(kind: str):
    """Records near a valid one: fields replaced by arbitrary JSON, dropped, or added."""
    base = VALID[kind]
    names = sorted(set(base) | set(schema(kind).get("properties", {})) | {"other"})
    return st.builds(
        lambda changed, dropped: {**{k: v for k, v in base.items() if k not in dropped}, **changed},
        st.dictionaries(st.sampled_from(names), _json, max_size=3),
        st.sets(st.sampled_from(sorted(base)), max_size=2),
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_compiled_schema_check_never_accepts_what_jsonschema_rejects(kind, data):
    from fraudstream.stream.contract import _passes_compiled_check, _validator

    value = data.draw(_mutations(kind))
    reference_errors = list(_validator(kind).iter_errors(value))
    if _passes_compiled_check(kind, value):
        assert reference_errors == [], value
    # and the verdict is the reference's either way
    assert (validate(kind, value) == []) <= (reference_errors == [])
