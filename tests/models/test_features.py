"""Tests for fraudstream.models.features: live/offline parity, window bounds, state."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.features import (
    CARD_EXTENDED_NAMES,
    FEATURE_NAMES,
    FEATURE_SETS,
    HANDBOOK_FEATURE_NAMES,
    WINDOWS_DAYS,
    CardState,
    TerminalState,
    calendar_features,
    compute_features,
    extra_feature_names,
    extra_features,
    feature_names,
    schema_hash,
    to_matrix,
    transaction_features,
)

DAY = 86400.0
T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday
EXTRA = ("risk", "absent")


def synthetic_stream(seed: int = 7, n: int = 5000, days: int = 40) -> pd.DataFrame:
    """A small random stream with equal-ts ties and events exactly on window bounds."""
    rng = np.random.default_rng(seed)
    ts = T0 + rng.uniform(0, days * DAY, n)
    ts[: n // 2] = np.round(ts[: n // 2])  # half on whole seconds, half fractional
    card = rng.integers(0, 300, n)
    term = rng.integers(0, 200, n)
    # Ties: copy another row's ts, half of them also its card / terminal.
    src, dst = rng.integers(0, n, 400), rng.integers(0, n, 400)
    ts[dst] = ts[src]
    card[dst[:200]] = card[src[:200]]
    term[dst[200:]] = term[src[200:]]
    # Boundaries: place rows exactly w, or D + w, or D after another row of the same key.
    offsets = np.array(
        [w * DAY for w in WINDOWS_DAYS] + [(7 + w) * DAY for w in WINDOWS_DAYS] + [7 * DAY]
        + [600.0, 3600.0]  # the extended set's short windows
    )
    src, dst = rng.integers(0, n, 400), rng.integers(0, n, 400)
    shifted = ts[src] + rng.choice(offsets, 400)
    keep = shifted < T0 + days * DAY
    src, dst, shifted = src[keep], dst[keep], shifted[keep]
    ts[dst] = shifted
    card[dst] = card[src]
    term[dst] = term[src]

    df = pd.DataFrame(
        {
            "tx_id": [f"tx{i}" for i in range(n)],
            "ts": ts,
            "card_id": [f"c{c}" for c in card],
            "terminal_id": [f"t{t}" for t in term],
            "amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
            "is_fraud": rng.random(n) < 0.02,
        }
    )
    risk = np.round(rng.normal(size=n), 3)
    df["features"] = [{"risk": float(r)} if i % 3 else None for i, r in enumerate(risk)]
    return df


def replay_live(df: pd.DataFrame, delay_s: float, tie_order: str = "stable",
                feature_set: str = "extended"):
    """Replay df in event-time order through the live states.

    Fraud labels reach the terminal at tx ts + delay, before transactions at that same time.
    Among transactions with equal ts the stream order is df order (or reversed).
    """
    ts = df["ts"].to_numpy()
    events = [(t, 1, i) for i, t in enumerate(ts)]
    if tie_order == "reversed":
        events = [(t, 1, -i) for i, t in enumerate(ts)]
    events += [(ts[i] + delay_s, 0, i) for i in np.flatnonzero(df["is_fraud"].to_numpy())]
    events.sort()

    records = df.to_dict("records")
    cards: dict[str, CardState] = {}
    terminals: dict[str, TerminalState] = {}
    feats: list[dict | None] = [None] * len(df)
    for _, kind, i in events:
        i = abs(i)
        tx = records[i]
        terminal = terminals.setdefault(tx["terminal_id"], TerminalState())
        if kind == 0:
            terminal.add_fraud(tx["ts"])
            continue
        card = cards.setdefault(tx["card_id"], CardState())
        feats[i] = transaction_features(tx, card, terminal, delay_s, extra=EXTRA,
                                        feature_set=feature_set)
        card.add(tx["ts"], tx["amount"], tx["terminal_id"])
        terminal.add_transaction(tx["ts"])
    return feats, cards, terminals


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    return synthetic_stream()


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
@pytest.mark.parametrize("delay_s", [7 * DAY, 0.0, 1.5 * DAY + 0.25])
def test_offline_matches_live_replay(stream: pd.DataFrame, delay_s: float,
                                     feature_set: str) -> None:
    names = feature_names(EXTRA, feature_set)
    live, cards, terminals = replay_live(stream, delay_s, feature_set=feature_set)
    live_m = to_matrix(live, names)
    offline = compute_features(stream, delay_s, extra=EXTRA, feature_set=feature_set)

    assert list(offline.columns) == ["tx_id", *names]
    assert offline["tx_id"].tolist() == stream["tx_id"].tolist()
    diff = np.abs(offline[names].to_numpy() - live_m)
    worst = dict(zip(names, diff.max(axis=0)))
    assert diff.max() <= 1e-9, worst
    # Counts are integers: exactly equal, not merely close.
    count_cols = [names.index(c) for c in names if "_count_" in c]
    assert np.array_equal(offline[names].to_numpy()[:, count_cols], live_m[:, count_cols])
    # The stream is long enough for the windows to slide and the states to be pruned.
    assert (offline["card_count_30d"] < offline.groupby(stream["card_id"]).cumcount()).any()
    assert sum(len(c) for c in cards.values()) < len(stream)
    assert sum(len(t) for t in terminals.values()) < len(stream)
    # ... and the stream really exercises ratios.
    assert (offline["terminal_fraud_ratio_30d"] > 0).sum() > 100
    if feature_set == "extended":  # ... and every extended feature takes several values
        for name in CARD_EXTENDED_NAMES:
            assert offline[name].nunique() > 1, name
        assert (offline["card_terminal_new_30d"] == 0).sum() > 100
        assert (offline["card_distinct_terminals_1d"] >= 2).sum() > 20
        assert (offline["card_count_10m"] >= 1).sum() > 20


def test_live_ignores_arrival_order_of_ties(stream: pd.DataFrame) -> None:
    names = feature_names(EXTRA)
    a = to_matrix(replay_live(stream, 7 * DAY)[0], names)
    b = to_matrix(replay_live(stream, 7 * DAY, tie_order="reversed")[0], names)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_offline_ignores_row_order(stream: pd.DataFrame) -> None:
    base = compute_features(stream, 7 * DAY, extra=EXTRA)
    shuffled = stream.sample(frac=1.0, random_state=3)
    again = compute_features(shuffled, 7 * DAY, extra=EXTRA)
    assert again.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(again.loc[base.index], base, rtol=0, atol=1e-9)


def test_offline_extras_from_flat_columns(stream: pd.DataFrame) -> None:
    flat = stream.drop(columns="features")
    flat["risk"] = [d["risk"] if d else np.nan for d in stream["features"]]
    a = compute_features(stream, DAY, extra=EXTRA)
    b = compute_features(flat, DAY, extra=EXTRA)
    pd.testing.assert_frame_equal(a, b)
    assert (b["x_absent"] == 0.0).all()


def test_card_window_bounds() -> None:
    card = CardState()
    card.add(T0, 10.0)
    card.add(T0 + 0.5, 30.0)
    # The current ts and every event sharing it are excluded.
    assert card.features(T0)["card_count_1d"] == 0.0
    f = card.features(T0 + 0.5)
    assert (f["card_count_1d"], f["card_mean_amount_1d"]) == (1.0, 10.0)
    # An event exactly w old is inside [ts - w, ts); a hair older is out.
    f = card.features(T0 + DAY)
    assert (f["card_count_1d"], f["card_mean_amount_1d"]) == (2.0, 20.0)
    f = card.features(T0 + DAY + 0.25)
    assert (f["card_count_1d"], f["card_mean_amount_1d"]) == (1.0, 30.0)
    f = card.features(T0 + DAY + 1)
    assert (f["card_count_1d"], f["card_mean_amount_1d"], f["card_count_7d"]) == (0.0, 0.0, 2.0)
    assert card.features(T0 + 30 * DAY)["card_count_30d"] == 2.0
    assert card.features(T0 + 30 * DAY + 1)["card_count_30d"] == 0.0


def test_terminal_window_is_shifted_by_delay() -> None:
    delay = 7 * DAY
    term = TerminalState()
    term.add_transaction(T0)
    term.add_transaction(T0 + 3600)
    term.add_fraud(T0)
    # Window [ts - D - w, ts - D): nothing is visible until D has passed.
    f = term.features(T0 + delay, delay)
    assert f["terminal_count_1d"] == 0.0 and f["terminal_fraud_ratio_1d"] == 0.0
    f = term.features(T0 + delay + 1, delay)
    assert (f["terminal_count_1d"], f["terminal_fraud_ratio_1d"]) == (1.0, 1.0)
    f = term.features(T0 + delay + 7200, delay)
    assert (f["terminal_count_1d"], f["terminal_fraud_ratio_1d"]) == (2.0, 0.5)
    f = term.features(T0 + delay + DAY, delay)  # T0 exactly 1 day before the window end
    assert (f["terminal_count_1d"], f["terminal_fraud_ratio_1d"]) == (2.0, 0.5)
    f = term.features(T0 + delay + DAY + 1, delay)
    assert (f["terminal_count_1d"], f["terminal_fraud_ratio_1d"]) == (1.0, 0.0)
    assert f["terminal_count_7d"] == 2.0 and f["terminal_fraud_ratio_7d"] == 0.5


def test_offline_window_bounds_match_hand_computed() -> None:
    df = pd.DataFrame(
        {
            "tx_id": ["a", "b", "c", "d", "e"],
            "ts": [T0, T0, T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY + 1],
            "card_id": ["k"] * 5,
            "terminal_id": ["t"] * 5,
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
            "is_fraud": [True, False, False, False, False],
        }
    )
    out = compute_features(df, label_delay_s=DAY).set_index("tx_id")
    assert out["card_count_1d"].tolist() == [0, 0, 2, 1, 1]
    assert out["card_mean_amount_1d"].tolist() == [0, 0, 15, 30, 40]
    assert out["card_count_7d"].tolist() == [0, 0, 2, 3, 4]
    # Terminal, D = 1 day: d sees [T0, T0 + DAY) = {a, b}; e sees [T0 + 1, T0 + DAY + 1) = {c}.
    assert out["terminal_count_1d"].tolist() == [0, 0, 0, 2, 1]
    assert out["terminal_fraud_ratio_1d"].tolist() == [0, 0, 0, 0.5, 0]


def test_calendar_flags_match_datetime() -> None:
    rng = np.random.default_rng(1)
    stamps = list(T0 + rng.uniform(0, 400 * DAY, 500))
    # Edges: 05:59:59.5 is night, 06:00 is not; Sunday 23:59:59 is weekend, Monday 00:00 not.
    stamps += [T0 + 6 * 3600 - 0.5, T0 + 6 * 3600, T0 + 7 * DAY - 1, T0 + 7 * DAY, T0 + 5 * DAY]
    df = pd.DataFrame(
        {
            "tx_id": range(len(stamps)),
            "ts": stamps,
            "card_id": 0,
            "terminal_id": 0,
            "amount": 1.0,
            "is_fraud": False,
        }
    )
    offline = compute_features(df, 0.0)
    for i, ts in enumerate(stamps):
        moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
        expected = {"is_weekend": float(moment.weekday() >= 5), "is_night": float(moment.hour < 6)}
        assert calendar_features(ts) == expected
        assert offline.loc[i, ["is_weekend", "is_night"]].to_dict() == expected
    assert calendar_features(T0 + 6 * 3600 - 0.5)["is_night"] == 1.0
    assert calendar_features(T0 + 6 * 3600)["is_night"] == 0.0
    assert calendar_features(T0 + 7 * DAY - 1)["is_weekend"] == 1.0
    assert calendar_features(T0 + 7 * DAY)["is_weekend"] == 0.0


def test_states_round_trip_through_json() -> None:
    card, term = CardState(), TerminalState()
    for k in range(50):
        card.add(T0 + k * 3600.5, 1.25 * k)
        term.features(T0 + k * 3600.5, DAY)
        term.add_transaction(T0 + k * 3600.5)
        if k % 7 == 0:
            term.add_fraud(T0 + k * 3600.5)
    card2 = CardState.from_dict(json.loads(json.dumps(card.to_dict())))
    term2 = TerminalState.from_dict(json.loads(json.dumps(term.to_dict())))
    assert card2 == card and term2 == term
    at = T0 + 60 * 3600
    assert card2.features(at) == card.features(at)
    assert term2.features(at, DAY) == term.features(at, DAY)
    with pytest.raises(ValueError):
        CardState.from_dict({**card.to_dict(), "v": 99})


def test_memory_is_bounded() -> None:
    card, term = CardState(), TerminalState()
    delay = 7 * DAY
    for k in range(100 * 24):  # one transaction an hour for 100 days
        ts = T0 + k * 3600.0
        term.features(ts, delay)
        card.add(ts, 1.0)
        term.add_transaction(ts)
        term.add_fraud(ts)
    assert len(card) == 30 * 24 + 1  # the newest 30 days, both bounds inclusive
    assert len(term) == 37 * 24 + 1 and term.n_frauds == 37 * 24 + 1
    # Pruning never changes an answer for the newest time.
    assert card.features(ts + 1)["card_count_30d"] == 30 * 24
    assert term.features(ts + 1, delay)["terminal_count_30d"] == 30 * 24
    assert len(term) == 37 * 24  # that query moved the horizon on by a second
    # A fraud label older than the horizon is dropped rather than stored.
    term.add_fraud(T0)
    assert term.n_frauds == 37 * 24


def test_terminal_keeps_everything_until_it_knows_the_delay() -> None:
    term = TerminalState()
    for k in range(60):
        term.add_transaction(T0 + k * DAY)
    assert len(term) == 60
    term.features(T0 + 60 * DAY, 7 * DAY)
    assert len(term) == 37  # [T0 + 23 d, T0 + 59 d]: 60 d - 7 d delay - 30 d window


def test_duplicate_fraud_label_cannot_push_ratio_past_one() -> None:
    term = TerminalState()
    term.add_transaction(T0)
    term.add_fraud(T0)
    term.add_fraud(T0)
    assert term.features(T0 + 1, 0.0)["terminal_fraud_ratio_1d"] == 1.0


def test_names_extras_and_schema_hash() -> None:
    assert len(HANDBOOK_FEATURE_NAMES) == 3 + 4 * len(WINDOWS_DAYS)
    assert HANDBOOK_FEATURE_NAMES[:5] == [
        "amount", "is_weekend", "is_night", "card_count_1d", "card_mean_amount_1d"
    ]
    assert HANDBOOK_FEATURE_NAMES[-1] == "terminal_fraud_ratio_30d"
    assert FEATURE_NAMES == HANDBOOK_FEATURE_NAMES + CARD_EXTENDED_NAMES  # the default set
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) == 24
    assert feature_names(feature_set="handbook") == HANDBOOK_FEATURE_NAMES
    with pytest.raises(ValueError, match="unknown feature set"):
        feature_names(feature_set="everything")
    # A model trained on one set is refused by a worker on the other: the hashes differ.
    assert schema_hash(feature_names(feature_set="handbook")) != schema_hash(feature_names())
    assert extra_feature_names(["a", "b"]) == ["x_a", "x_b"]
    assert feature_names(["a"]) == [*FEATURE_NAMES, "x_a"]
    tx = {"ts": T0, "amount": 5, "features": {"a": 2, "z": 9}}
    assert extra_features(tx, ["a", "b"]) == {"x_a": 2.0, "x_b": 0.0}
    feats = transaction_features(tx | {"terminal_id": "t"}, CardState(), TerminalState(), DAY,
                                 extra=["a", "b"])
    assert list(feats) == feature_names(["a", "b"])
    h = schema_hash(FEATURE_NAMES)
    assert len(h) == 64 and h == schema_hash(list(FEATURE_NAMES))
    assert h != schema_hash(feature_names(["a"])) and h != schema_hash(FEATURE_NAMES[::-1])


def test_to_matrix() -> None:
    m = to_matrix([{"a": 1, "b": 2}, {"b": 4, "a": 3}], ["b", "a"])
    assert m.dtype == np.float64 and m.tolist() == [[2, 1], [4, 3]]
    assert to_matrix([], ["a"]).shape == (0, 1)
    with pytest.raises(KeyError):
        to_matrix([{"a": 1}], ["a", "b"])


def test_offline_rejects_non_finite_ts(stream: pd.DataFrame) -> None:
    bad = stream.head(10).copy()
    bad.loc[bad.index[3], "ts"] = np.nan
    with pytest.raises(ValueError):
        compute_features(bad, DAY)


# --- the extended set's card features ----------------------------------------------------
def test_recent_card_features_by_hand() -> None:
    card = CardState()
    first = card.recent_features(T0, 50.0, "t1")
    assert first == {
        "card_seconds_since_prev": 30 * DAY, "card_count_10m": 0.0, "card_amount_sum_10m": 0.0,
        "card_count_1h": 0.0, "card_amount_sum_1h": 0.0, "card_amount_ratio_30d": 1.0,
        "card_terminal_new_30d": 1.0, "card_distinct_terminals_1h": 0.0,
        "card_distinct_terminals_1d": 0.0,
    }
    assert list(first) == CARD_EXTENDED_NAMES
    card.add(T0, 2.0, "t1")
    card.add(T0 + 60, 1.0, "t2")
    card.add(T0 + 60, 1.0, "t2")  # same time, same terminal: one distinct terminal
    card.add(T0 + 3000, 0.5, "t3")
    # At T0 + 3600: [ts - 1 h, ts) holds all four; [ts - 10 min, ts) only the last.
    f = card.recent_features(T0 + 3600, 300.0, "t2")
    assert f["card_seconds_since_prev"] == 600.0
    assert (f["card_count_10m"], f["card_amount_sum_10m"]) == (1.0, 0.5)
    assert (f["card_count_1h"], f["card_amount_sum_1h"]) == (4.0, 4.5)
    assert f["card_amount_ratio_30d"] == 300.0 / 1.125
    probes = CardState()
    probes.add(T0, 0.25, "t1")  # a mean of cents is floored at 1
    assert probes.recent_features(T0 + 1, 300.0, "t1")["card_amount_ratio_30d"] == 300.0
    assert f["card_terminal_new_30d"] == 0.0
    assert f["card_distinct_terminals_1h"] == 3.0 == f["card_distinct_terminals_1d"]
    # An event exactly 1 h old is in; a hair older is out. Equal-ts events are never in.
    f = card.recent_features(T0 + 3600.5, 10.0, "t9")
    assert f["card_count_1h"] == 3.0 and f["card_distinct_terminals_1h"] == 2.0
    assert f["card_terminal_new_30d"] == 1.0
    assert card.recent_features(T0 + 60, 1.0, "t2")["card_terminal_new_30d"] == 1.0
    # Novelty and recency forget what is older than 30 days.
    later = card.recent_features(T0 + 3000 + 30 * DAY, 1.0, "t3")
    assert later["card_terminal_new_30d"] == 0.0 and later["card_seconds_since_prev"] == 30 * DAY
    later = card.recent_features(T0 + 3000.5 + 30 * DAY, 1.0, "t3")
    assert later["card_terminal_new_30d"] == 1.0 and later["card_seconds_since_prev"] == 30 * DAY
    assert later["card_amount_ratio_30d"] == 1.0  # empty window: neutral


def test_offline_extended_features_by_hand() -> None:
    df = pd.DataFrame({
        "tx_id": list("abcdef"),
        "ts": [T0, T0 + 60, T0 + 60, T0 + 3000, T0 + 3600, T0 + 3600.5],
        "card_id": ["k"] * 6,
        "terminal_id": ["t1", "t2", "t2", "t3", "t2", "t9"],
        "amount": [2.0, 1.0, 1.0, 0.5, 300.0, 10.0],
        "is_fraud": [False] * 6,
    })
    out = compute_features(df, DAY).set_index("tx_id")
    assert out["card_seconds_since_prev"].tolist() == [30 * DAY, 60, 60, 2940, 600, 0.5]
    assert out["card_count_10m"].tolist() == [0, 1, 1, 0, 1, 1]
    assert out["card_distinct_terminals_1h"].tolist() == [0, 1, 1, 2, 3, 2]
    assert out["card_terminal_new_30d"].tolist() == [1, 1, 1, 1, 0, 1]
    assert out.loc["e", "card_amount_ratio_30d"] == 300.0 / 1.125
    assert out.loc["f", "card_amount_sum_1h"] == 302.5  # b, c, d, e: a is 1 h + 0.5 s old


def test_card_state_keeps_terminals_through_json_and_reads_version_1() -> None:
    card = CardState()
    for k in range(5):
        card.add(T0 + k * 60.0, 1.0 + k, f"t{k % 2}")
    again = CardState.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card and card.to_dict()["v"] == 2
    assert again.recent_features(T0 + 600, 1.0, "t1") == card.recent_features(T0 + 600, 1.0, "t1")
    # A state written before terminals were kept: counts and amounts intact, terminals unknown.
    old = CardState.from_dict({"v": 1, "ts": [T0, T0 + 60.0], "amount": [1.0, 2.0]})
    assert old.features(T0 + 120)["card_count_1d"] == 2.0
    assert old.recent_features(T0 + 120, 1.0, "t1")["card_terminal_new_30d"] == 1.0
    with pytest.raises(ValueError):
        CardState.from_dict({**card.to_dict(), "terminal": ["t1"]})
    with pytest.raises(ValueError):
        CardState.from_dict({**card.to_dict(), "v": 99})


def test_card_terminals_are_pruned_with_their_events() -> None:
    card = CardState()
    for k in range(40 * 24):
        card.add(T0 + k * 3600.0, 1.0, f"t{k}")
    assert len(card) == 30 * 24 + 1
    assert len(card.to_dict()["terminal"]) == 30 * 24 + 1
    assert card.recent_features(T0 + 40 * 24 * 3600.0, 1.0, "t0")["card_terminal_new_30d"] == 1.0
