"""The trainer's training window: dedup by tx_id, event-time eviction, row bound, snapshots."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.models.window import TrainingWindow, WindowData
from fraudstream.stream.contract import validate

NAMES = ["amount", "card_count_1d", "is_night"]
DAY = 86_400.0
T0 = 1_767_225_600.0


def example(tx_id, ts, fraud=False, card="card-1", online=None, features=None, **extra):
    record = {
        "tx_id": tx_id, "card_id": card, "event_ts": T0 + ts, "is_fraud": fraud,
        "label_ts": T0 + ts + 7 * DAY,
        "features": features if features is not None else {"amount": 10.0 + ts, "card_count_1d": 1.0,
                                                            "is_night": 0.0},
        **extra,
    }
    if online is not None:
        record["scores"] = {"online": online}
    return record


def window(window_s=30 * DAY, max_rows=1_000_000):
    return TrainingWindow(NAMES, window_s, max_rows)


def test_examples_are_contract_records():
    assert validate("training-examples", example("t1", 0, online=0.3)) == []


@pytest.mark.parametrize("window_s, max_rows", [(0, 10), (-1, 10), (10, 0)])
def test_bad_bounds_are_refused(window_s, max_rows):
    with pytest.raises(ValueError, match="positive"):
        TrainingWindow(NAMES, window_s, max_rows)


# -- duplicates --------------------------------------------------------------------------------


def test_duplicates_by_tx_id_are_ignored_and_counted():
    w = window()
    assert w.add(example("t1", 0, fraud=True)) is True
    assert w.add(example("t2", 1)) is True
    assert w.add(example("t1", 0, fraud=True)) is False
    # A redelivery that disagrees is still the same transaction: the first copy stands.
    assert w.add(example("t1", 5, fraud=False, card="card-9")) is False
    assert len(w) == 2 and w.duplicates == 2 and w.n_frauds == 1
    assert w.stats()["duplicates_ignored"] == 2
    snap = w.snapshot()
    assert snap.tx_id.tolist() == ["t1", "t2"] and snap.y.tolist() == [1, 0]
    assert snap.card.tolist() == ["card-1", "card-1"]


# -- eviction by event time ----------------------------------------------------------------------


def test_late_examples_older_than_the_window_are_rejected():
    w = window(window_s=10 * DAY)
    assert w.add(example("new", 20 * DAY))
    assert w.add(example("edge", 10 * DAY))       # exactly window_s older: still inside
    assert not w.add(example("late", 10 * DAY - 1))  # one second older: outside
    assert w.duplicates == 0  # a late example is not a duplicate
    assert sorted(w.snapshot().tx_id) == ["edge", "new"]


def test_a_newer_event_evicts_what_falls_out_of_the_window():
    w = window(window_s=10 * DAY)
    w.add(example("a", 0, fraud=True))
    w.add(example("b", 5 * DAY))
    w.add(example("c", 12 * DAY, fraud=True))  # the window now starts at day 2: "a" is out
    assert w.newest_ts == T0 + 12 * DAY
    assert w.evict() == 1
    assert len(w) == 2 and w.n_frauds == 1
    assert w.snapshot().tx_id.tolist() == ["b", "c"]
    assert w.evict() == 0


def test_snapshot_evicts_first():
    w = window(window_s=10 * DAY)
    w.add(example("a", 0))
    w.add(example("b", 30 * DAY))
    assert w.snapshot().tx_id.tolist() == ["b"] and len(w) == 1


def test_eviction_runs_by_itself_every_ten_thousand_adds():
    w = window(window_s=100)
    for i in range(10_000):
        w.add(example(f"t{i}", float(i), features={}))
    # rows in [9899, 9999] remain without anyone calling evict() or snapshot()
    assert len(w) == 101 and w.stats()["first_event_ts"] == T0 + 9899


# -- the row bound -------------------------------------------------------------------------------


def test_max_rows_drops_the_oldest_events_not_the_oldest_arrivals():
    w = window(max_rows=3)
    for tx, ts in [("d", 4), ("b", 2), ("e", 5), ("a", 1), ("c", 3)]:
        w.add(example(tx, ts, fraud=tx in "ab"))
        assert len(w) <= 3
    assert w.snapshot().tx_id.tolist() == ["c", "d", "e"]
    assert w.n_frauds == 0


def test_max_rows_breaks_event_time_ties_by_tx_id():
    w = window(max_rows=2)
    for tx in ["z", "m", "a"]:
        w.add(example(tx, 0))
    assert sorted(w.snapshot().tx_id) == ["m", "z"]


# -- snapshot ------------------------------------------------------------------------------------


def test_snapshot_is_sorted_by_event_time_and_its_arrays_are_aligned():
    rng = random.Random(0)
    records = [example(f"t{i:03d}", float(rng.randrange(0, 5 * 86400)), fraud=rng.random() < 0.3,
                       card=f"card-{rng.randrange(5)}", online=round(rng.random(), 3),
                       features={"amount": rng.uniform(1, 500), "card_count_1d": float(rng.randrange(9)),
                                 "is_night": float(rng.random() < 0.5)})
               for i in range(200)]
    w = window()
    for r in records:
        w.add(r)
    snap = w.snapshot()
    assert isinstance(snap, WindowData) and len(snap) == 200
    assert snap.feature_names == NAMES
    assert snap.X.shape == (200, 3) and snap.X.dtype == np.float64
    assert snap.y.dtype == np.int64 and snap.ts.dtype == np.float64
    assert snap.card.dtype == object and snap.tx_id.dtype == object
    assert snap.score_online.dtype == np.float64
    keys = list(zip(snap.ts, snap.tx_id))
    assert keys == sorted(keys)
    by_id = {r["tx_id"]: r for r in records}
    for i, tx in enumerate(snap.tx_id):
        r = by_id[tx]
        assert snap.ts[i] == r["event_ts"] and snap.y[i] == int(r["is_fraud"])
        assert snap.card[i] == r["card_id"] and snap.score_online[i] == r["scores"]["online"]
        # features are held as float32 to bound memory
        expected = np.array([r["features"][n] for n in NAMES], dtype=np.float32).astype(np.float64)
        np.testing.assert_array_equal(snap.X[i], expected)


def test_snapshot_is_a_copy():
    w = window()
    w.add(example("t1", 0))
    snap = w.snapshot()
    snap.X[:] = -1
    assert w.snapshot().X[0, 0] == 10.0


def test_missing_features_are_zero_and_extra_ones_ignored():
    w = window()
    w.add(example("t1", 0, features={"amount": 3.5, "x_unknown": 9.0}))
    np.testing.assert_array_equal(w.snapshot().X, [[3.5, 0.0, 0.0]])


def test_online_score_comes_from_scores_and_is_nan_when_unknown():
    w = window()
    w.add(example("scored", 0, online=0.25))
    w.add(example("unscored", 1))
    w.add(example("other-models-only", 2, scores={"batch": 0.9}))
    w.add(example("null", 3, scores={"online": None}))
    w.add(example("legacy-field", 4, score_online=0.75))
    w.add(example("scores-win", 5, online=0.5, score_online=0.1))
    s = w.snapshot().score_online
    assert s[0] == 0.25
    assert math.isnan(s[1]) and math.isnan(s[2]) and math.isnan(s[3])
    assert s[4] == 0.75 and s[5] == 0.5


def test_an_empty_window_snapshots_to_empty_arrays():
    snap = window().snapshot()
    assert len(snap) == 0 and snap.X.shape == (0, 3)
    assert window().stats() == {"rows": 0, "frauds": 0, "first_event_ts": None,
                                "last_event_ts": None, "duplicates_ignored": 0}


def test_stats_describe_the_window():
    w = window()
    for tx, ts, fraud in [("a", 3, True), ("b", 1, False), ("c", 2, True), ("a", 3, True)]:
        w.add(example(tx, ts, fraud=fraud))
    assert w.stats() == {"rows": 3, "frauds": 2, "first_event_ts": T0 + 1, "last_event_ts": T0 + 3,
                         "duplicates_ignored": 1}


# -- digest --------------------------------------------------------------------------------------


def _records(n=60, seed=0):
    rng = random.Random(seed)
    return [example(f"t{i}", float(rng.randrange(0, 20 * 86400)), fraud=rng.random() < 0.2)
            for i in range(n)]


def _filled(records, **kwargs):
    w = window(**kwargs)
    for r in records:
        w.add(r)
    return w


def test_digest_is_the_same_for_the_same_contents_in_any_order():
    records = _records()
    reference = _filled(records)
    for seed in range(5):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        redelivered = shuffled + shuffled[:10]  # at-least-once: some come twice
        assert _filled(redelivered).digest() == reference.digest()


def test_digest_is_order_independent_when_the_window_drops_old_examples():
    # A restarted trainer reads the examples again in another order: the rebuilt window
    # must have the same digest without the caller having to know to evict() first.
    records = _records()  # events over 20 days, window 10 days
    oldest_first = sorted(records, key=lambda r: r["event_ts"])
    newest_first = list(reversed(oldest_first))
    a = _filled(oldest_first, window_s=10 * DAY)
    b = _filled(newest_first, window_s=10 * DAY)
    assert a.digest() == b.digest(), (
        f"same examples, different order: {a.stats()['rows']} vs {b.stats()['rows']} rows")


def test_digest_after_eviction_agrees_with_snapshot_contents():
    records = _records()
    oldest_first = sorted(records, key=lambda r: r["event_ts"])
    a = _filled(oldest_first, window_s=10 * DAY)
    b = _filled(list(reversed(oldest_first)), window_s=10 * DAY)
    assert a.snapshot().tx_id.tolist() == b.snapshot().tx_id.tolist()
    assert a.digest() == b.digest()


def test_digest_changes_when_a_label_or_a_row_differs():
    records = _records()
    reference = _filled(records).digest()
    flipped = [dict(r) for r in records]
    flipped[7]["is_fraud"] = not flipped[7]["is_fraud"]
    assert _filled(flipped).digest() != reference
    assert _filled(records[:-1]).digest() != reference
    # features are not part of the digest: it identifies which labelled transactions
    moved = [dict(r, features={"amount": 1.0}) for r in records]
    assert _filled(moved).digest() == reference


# -- far-future examples ---------------------------------------------------------------------------

NOW = T0 + 40 * DAY


def _prefilled(n=5, **kwargs):
    w = TrainingWindow(NAMES, 30 * DAY, **kwargs)
    for i in range(n):
        assert w.add(example(f"old{i}", 35 * DAY + i * 3600, fraud=i == 0), now=NOW)
    return w


def test_a_far_future_example_is_refused_and_cannot_evict_the_window():
    w = _prefilled()
    newest = w.newest_ts
    assert w.add(example("future", 40 * DAY + 10 * 365 * DAY), now=NOW) is False
    assert w.refused_future == 1 and w.newest_ts == newest
    assert w.evict() == 0 and len(w) == 5 and w.n_frauds == 1
    assert w.duplicates == 0  # refused for its time, not as a duplicate


def test_the_skew_is_measured_from_the_clock_inclusive():
    w = TrainingWindow(NAMES, 30 * DAY, max_future_skew_s=DAY)
    assert w.add(example("edge", 40 * DAY + DAY), now=NOW)          # exactly the skew ahead
    assert not w.add(example("over", 40 * DAY + DAY + 1), now=NOW)  # one second more
    assert w.refused_future == 1 and w.newest_ts == NOW + DAY


def test_an_empty_window_refuses_a_far_future_first_example():
    w = window()
    assert w.add(example("first", 40 * DAY + 2 * DAY), now=NOW) is False
    assert len(w) == 0 and w.newest_ts == -math.inf and w.refused_future == 1
    assert w.add(example("next", 39 * DAY), now=NOW)


def test_a_chain_of_examples_each_a_little_ahead_cannot_walk_the_window_forward():
    # Measured from the newest event, each of these would be within the skew of the last.
    w = _prefilled()
    for k in range(1, 60):
        w.add(example(f"step{k}", 40 * DAY + k * 0.9 * DAY), now=NOW)
    assert w.newest_ts <= NOW + DAY
    assert {f"old{i}" for i in range(5)} <= set(w.snapshot().tx_id)


def test_a_gap_in_the_data_is_not_mistaken_for_the_future():
    # The trainer was down for a week: what arrives after the gap is on time by the clock.
    w = window()
    assert w.add(example("before", 30 * DAY), now=T0 + 30 * DAY)
    assert w.add(example("after", 37 * DAY), now=T0 + 37 * DAY)
    assert w.refused_future == 0 and len(w) == 2


def test_far_past_examples_are_still_dropped_with_a_clock():
    w = _prefilled()
    assert not w.add(example("ancient", 35 * DAY - 31 * DAY), now=NOW)
    assert w.refused_future == 0 and len(w) == 5


def test_without_a_clock_nothing_is_refused_for_its_time():
    # Offline replays (notebooks, backtests) may have gaps longer than the skew.
    w = window()
    assert w.add(example("a", 0)) and w.add(example("b", 20 * DAY))
    assert w.refused_future == 0


@pytest.mark.parametrize("skew", [0, -1.0, math.nan])
def test_a_non_positive_skew_is_refused(skew):
    with pytest.raises(ValueError, match="max_future_skew_s"):
        TrainingWindow(NAMES, DAY, max_future_skew_s=skew)


@pytest.mark.parametrize("change", [
    {"event_ts": math.nan}, {"event_ts": math.inf}, {"event_ts": 10 ** 400},
    {"features": {"amount": 1e308}},            # finite as float64, inf as the float32 kept
    {"features": {"amount": 10 ** 400}},        # too large for any float
    {"features": {"amount": -math.inf}},
    {"scores": {"online": math.inf}},
])
def test_non_finite_values_are_refused_and_change_nothing(change):
    w = _prefilled()
    before = (len(w), w.newest_ts, w.n_frauds, w.digest())
    with pytest.raises(ValueError):
        w.add({**example("bad", 39 * DAY), **change}, now=NOW)
    assert (len(w), w.newest_ts, w.n_frauds, w.digest()) == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-60 * DAY, 50 * 365 * DAY), max_size=40),
       st.floats(0, 100 * DAY))
def test_no_sequence_of_examples_moves_the_newest_event_past_the_clock(offsets, clock_offset):
    now = T0 + clock_offset
    w = TrainingWindow(NAMES, 30 * DAY, max_future_skew_s=DAY)
    for i, offset in enumerate(offsets):
        w.add(example(f"t{i}", offset), now=now)
    assert w.newest_ts <= now + DAY
    accepted = [o for o in offsets if T0 + o <= now + DAY]
    assert w.refused_future == len(offsets) - len(accepted)
