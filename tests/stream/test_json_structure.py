"""stream/json_structure.py: the checks every decoded record goes through before its schema."""

from __future__ import annotations

from fraudstream.stream.json_structure import plainly_flat, structure_problems, walk_problems
from hostile_json import hostile_json
from hypothesis import given, settings
from hypothesis import strategies as st

TX = {"tx_id": "tx-1", "ts": "2026-01-01T10:00:00Z", "card_id": "c1", "terminal_id": "t1",
      "amount": 12.5, "features": {"mcc_risk": 0.3}}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=4), hostile_json, max_size=6))
def test_the_flat_record_shortcut_passes_only_what_the_full_walk_passes(record):
    if plainly_flat(record):
        assert walk_problems(record, 2) == []


def test_what_a_producer_sends_takes_the_shortcut_and_anything_else_gets_the_walk():
    assert plainly_flat(TX)
    assert structure_problems({**TX, "amount": float("inf")}, 16) == [
        ("non_finite", "amount is inf (numbers must be finite)")]
    assert structure_problems({**TX, "x": [[[1]]]}, 2)[0][0] == "too_deep"
    assert structure_problems(TX, 16) == []
