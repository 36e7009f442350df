"""Valid and invalid examples for every topic of the wire contract."""

import base64
import json

import pytest
from hostile_json import hostile_json
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


# --- bounds beyond JSON Schema (issue 11): each refusal has its own reason class -------------

TX = VALID["transactions"]


def _raw(value) -> bytes:
    return json.dumps(value).encode("utf-8")


@pytest.mark.parametrize("raw, reason, fragment", [
    (_raw({**TX, "amount": 1e300}), "out_of_bounds", "FRAUDSTREAM_MAX_AMOUNT"),
    (_raw({**TX, "amount": 1e308}), "out_of_bounds", "amount"),
    (_raw({**TX, "features": {"x": -1e10}}), "out_of_bounds", "features.x"),
    (_raw({**TX, "card_id": "c" * 129}), "schema", "card_id"),
    (b'{"tx_id":"t","ts":1767225600,"card_id":"c\\ud800","terminal_id":"x","amount":1}',
     "invalid_string", "card_id"),
    (b'{"tx_id":"t\\udfff","ts":1767225600,"card_id":"c","terminal_id":"x","amount":1}',
     "invalid_string", "tx_id"),
    (b'{"tx_id":"t","ts":1767225600,"card_id":"c","terminal_id":"\\ud83d","amount":1}',
     "invalid_string", "terminal_id"),
    (b'{"tx_id":"t","ts":1767225600,"card_id":"c","terminal_id":"x","amount":1,"\\ud800":1}',
     "invalid_string", "key"),
    (_raw({**TX, "x": json.loads("[" * 500 + "]" * 500)}), "too_deep", "nested deeper"),
    (b"[" * 1000 + b"]" * 1000, "too_deep", "nested too deeply"),
    (b'{"tx_id":"t","ts":1767225600,"card_id":"c","terminal_id":"x","amount":1e999}',
     "non_finite", "finite"),
    (b'{"tx_id":"t","ts":1767225600,"card_id":"c","terminal_id":"x","amount":NaN}',
     "malformed_json", "finite"),
    (b"x" * 70_000, "oversize", "limit"),
    (None, "empty", "empty"),
    (b"\xff", "encoding", "UTF-8"),
    (b"{nope", "malformed_json", "malformed"),
    (b"\xef\xbb\xbf" + _raw(TX), "malformed_json", "byte order mark"),
])
def test_every_refusal_has_a_reason_class_and_a_readable_error(raw, reason, fragment):
    out = decode("transactions", raw)
    assert out.value is None and out.reason == reason, out
    assert fragment in out.error


def test_bounds_are_configurable():
    from fraudstream.stream.contract import Bounds

    raw = _raw({**TX, "amount": 5_000.0, "card_id": "c" * 20})
    assert decode("transactions", raw).ok
    tight = Bounds(max_amount=1_000.0, max_id_length=10)
    out = decode("transactions", raw, bounds=tight)
    assert out.reason == "out_of_bounds"
    assert "amount" in out.error and "card_id" in out.error


@pytest.mark.parametrize("kind, value, fragment", [
    ("labels", {**VALID["labels"], "card_id": "c\ud800"}, "card_id"),
    ("training-examples", {**VALID["training-examples"], "features": {"amount": 1e300}}, "features.amount"),
    ("training-examples", {**VALID["training-examples"], "event_ts": 9e12}, "event_ts"),
    ("training-examples", {**VALID["training-examples"], "tx_id": "t" * 500}, "tx_id"),
    ("synthetic-frauds", {**VALID["synthetic-frauds"], "features": {"amount": -1e200}}, "features.amount"),
    ("synthetic-frauds", {**VALID["synthetic-frauds"],
                          "features": {f"f{i}": 1.0 for i in range(300)}}, "features"),
])
def test_the_same_bounds_hold_for_labels_examples_and_synthetic_frauds(kind, value, fragment):
    errors = validate(kind, value)
    assert errors and any(fragment in e for e in errors), errors


def test_a_dead_letter_of_an_oversized_record_keeps_a_prefix_and_the_digest():
    import hashlib

    from fraudstream.stream.contract import DLQ_PAYLOAD_PREFIX_BYTES

    raw = b"y" * 900_000
    record = dead_letter("payload is 900000 bytes", raw, "transactions", 0, 1, b"k" * 5000, 1.0)
    assert validate("dlq", record) == []
    wire = encode("dlq", record)
    assert len(wire) < 200_000  # fits any producer's request limit (aiokafka's default: 1 MB)
    assert base64.b64decode(record["payload_b64"]) == raw[:DLQ_PAYLOAD_PREFIX_BYTES]
    assert record["payload_truncated"] and record["payload_bytes"] == len(raw)
    assert record["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["source"]["key_truncated"]


def _nest(value, depth):
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(["tx_id", "card_id", "terminal_id", "amount", "features", "ts",
                              "version", "x"]),
       value=hostile_json, depth=st.sampled_from([0, 1, 50, 2000]))
def test_validate_never_raises_on_surrogates_huge_floats_or_deep_nesting(kind, field, value, depth):
    record = {**VALID.get(kind, {}), field: _nest(value, depth)}
    errors = validate(kind, record)  # must not raise (RecursionError, UnicodeEncodeError...)
    if depth > 16:
        assert errors
    try:
        raw = json.dumps(record, ensure_ascii=True).encode()
    except (ValueError, RecursionError):
        return
    out = decode(kind, raw, max_bytes=1 << 20)
    assert out.ok or (out.error and out.reason)
    if out.ok:  # whatever passes can be written back: no surrogate, no non-finite number
        out.value and json.dumps(out.value, allow_nan=False).encode("utf-8")


def test_the_dlq_schema_lists_every_reason_class():
    from fraudstream.stream.contract import REASONS

    assert tuple(schema("dlq")["properties"]["reason"]["enum"]) == REASONS


def test_a_huge_integer_is_refused_as_out_of_bounds_not_raised():
    digits = "1" + "0" * 400
    raw = ('{"tx_id":"t","ts":1767225600,"card_id":"c","terminal_id":"x","amount":%s,'
           '"features":{"a":%s}}' % (digits, digits)).encode()
    out = decode("transactions", raw)
    assert out.reason == "out_of_bounds" and len(out.error) < 300, out
