"""The scoring path's records: built in one place, valid against the wire contract."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from faust.types import TP
from fraudstream.models.scorer import FALLBACK_ONLINE, ScoredBatch, fallback_class
from fraudstream.stream.contract import decode, encode
from fraudstream.stream.consumer_lag import ConsumerLag
from fraudstream.stream.records import (
    Featurised,
    finite_scores,
    score_record,
    snapshot,
    snapshot_scores,
    training_example,
)
from prometheus_client import CollectorRegistry, Gauge

REC = Featurised("tx1", "c1", "t1", 1767225600.0, 1767225600.5, {"amount": 12.5}, 3)


def _scored(batch_score: float = 0.9, shadow: str | None = None) -> ScoredBatch:
    return ScoredBatch(np.array([0.2]), {"online": np.array([0.2]), "batch": np.array([batch_score])},
                       ["approve"], "xgb-1", [[]], shadow,
                       fallbacks=[FALLBACK_ONLINE if math.isnan(batch_score) else None],
                       versions=["online" if math.isnan(batch_score) else "xgb-1"])


def test_a_score_record_is_valid_on_the_wire_and_leaves_out_non_finite_scores() -> None:
    scored = _scored(batch_score=float("nan"))
    per_model = finite_scores(scored, 0)
    assert per_model == {"online": 0.2}  # the champion's NaN is not put on the wire
    value = score_record(REC, scored, 0, per_model, now=1767225601.0)
    assert value["fallback"] == FALLBACK_ONLINE and value["model_version"] == "online"
    assert fallback_class(value["fallback"]) == "champion_failed"
    assert decode("scores", encode("scores", value), 65536).error is None


def test_a_shadow_version_is_carried_only_when_a_shadow_scored() -> None:
    assert "shadow_version" not in score_record(REC, _scored(), 0, {}, 0.0)
    assert score_record(REC, _scored(shadow="xgb-2"), 0, {}, 0.0)["shadow_version"] == "xgb-2"
    assert "fallback" not in score_record(REC, _scored(), 0, {}, 0.0)


def test_a_snapshot_becomes_a_valid_training_example() -> None:
    scored = _scored()
    snap = snapshot(REC, scored, finite_scores(scored, 0))
    assert snap["score_online"] == 0.2 and snap["scores"] == {"online": 0.2, "batch": 0.9}
    example = training_example(dict(snap), True, 1767225700.0, "explicit")
    assert example["scores"] == snap["scores"] and example["features"] == REC.features
    assert decode("training-examples", encode("training-examples", dict(example)),
                  1 << 20).error is None


def test_an_old_snapshot_without_per_model_scores_keeps_its_online_score() -> None:
    assert snapshot_scores({"score_online": 0.4}) == {"online": 0.4}
    assert snapshot_scores({"score_online": None}) == {}


def test_consumer_lag_reports_owned_partitions_and_drops_revoked_ones() -> None:
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    tx0, tx1, other = TP("tx", 0), TP("tx", 1), TP("changelog", 0)
    consumer = SimpleNamespace(_read_offset={tx0: 9, tx1: None},
                               highwater=lambda tp: {"tx": 20}.get(tp.topic))
    lag = ConsumerLag(gauge)
    lag.update(consumer, frozenset({tx0, tx1, other}), ("tx",))
    assert gauge.labels("tx", "0")._value.get() == 10  # 20 - (9 + 1)
    assert gauge.labels("tx", "1")._value.get() == 20  # nothing read yet
    lag.update(consumer, frozenset({tx0}), ("tx",))  # partition 1 revoked
    series = {s.labels["partition"] for m in gauge.collect() for s in m.samples}
    assert series == {"0"}


def test_snapshots_travel_in_batches_and_a_bad_entry_is_left_out_and_described() -> None:
    from fraudstream.stream.records import decode_snapshots
    from fraudstream.stream.state import dumps

    good = snapshot(REC, _scored(), finite_scores(_scored(), 0))
    got, problem = decode_snapshots(dumps([good, good]), 1e9)
    assert problem is None and got == [good, good]

    bad_feature = {**good, "features": {"amount": 1e12}}  # beyond max_feature_abs
    no_id = {k: v for k, v in good.items() if k != "tx_id"}
    odd_shadow = {**good, "shadow_version": 3}
    got, problem = decode_snapshots(dumps([good, bad_feature, no_id, odd_shadow, 7]), 1e9)
    assert got == [good]
    assert problem.startswith("4 of 5 snapshots left out")
    assert "entry 1: features" in problem and "entry 2: tx_id" in problem
    assert "entry 3: shadow_version" in problem

    for raw, says in ((b"{not json", "not JSON"), (b'{"tx_id": "a"}', "not a JSON list"),
                      (None, "not a JSON list")):
        got, problem = decode_snapshots(raw, 1e9)
        assert got == [] and says in problem
    # NaN is not JSON: a non-finite feature cannot get through
    got, problem = decode_snapshots(dumps([good]).replace(b"12.5", b"NaN"), 1e9)
    assert got == [] and "not JSON" in problem


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=3),
                       st.floats() | st.sampled_from([1e308, -1e308, 1e6, -1e6 - 1.0, 0.0]),
                       max_size=30),
       st.sampled_from([1e6, 1e308]))
def test_the_all_floats_shortcut_of_the_feature_check_agrees_with_the_check_value_by_value(
        features, max_abs):
    from fraudstream.stream.announce import feature_problem

    by_value = next((name for name, v in features.items()
                     if not math.isfinite(v) or abs(v) > max_abs), None)
    problem = feature_problem(features, None, max_abs)
    assert (problem is None) == (by_value is None), (features, problem)
