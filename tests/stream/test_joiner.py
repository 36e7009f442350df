from fraudstream.stream.joiner import LabelJoiner
from store_fakes import DictStore

DAY = 86400.0


def snap(tx, ts):
    return {"tx_id": tx, "card_id": "c", "terminal_id": "t", "event_ts": ts,
            "features": {"amount": 1.0}, "score_online": 0.1, "model_version": "online-v1"}


def label(tx, fraud, ts):
    return {"tx_id": tx, "card_id": "c", "is_fraud": fraud, "ts": ts}


def joiner(mode="all"):
    return LabelJoiner(DictStore(), DictStore(), mode=mode, maturity_s=7 * DAY)


def test_label_after_snapshot_joins_the_scoring_time_snapshot():
    j = joiner()
    assert j.on_snapshot(0, snap("a", 0.0)) == []
    outcome, joined = j.on_label(0, label("a", True, 7 * DAY), 7 * DAY)
    assert outcome == "joined" and joined[0].is_fraud and joined[0].snapshot["event_ts"] == 0.0
    assert not j.pending and not j.waiting


def test_label_before_snapshot_waits_then_joins():
    j = joiner()
    outcome, joined = j.on_label(0, label("a", False, 7 * DAY), 7 * DAY)
    assert outcome == "waiting" and joined == []
    joined = j.on_snapshot(0, snap("a", 0.0))
    assert len(joined) == 1 and joined[0].is_fraud is False and joined[0].source == "explicit"
    assert not j.waiting


def test_redelivered_snapshot_is_not_pending_twice():
    j = joiner()
    j.on_snapshot(0, snap("a", 0.0))
    j.on_snapshot(0, snap("a", 0.0))
    assert len(j.pending) == 1


def test_fraud_only_matures_unlabelled_snapshots_on_the_label_watermark():
    j = joiner("fraud_only")
    j.on_snapshot(0, snap("legit", 0.0))
    j.on_snapshot(0, snap("fraud", 1.0))
    j.on_snapshot(0, snap("late", 5 * DAY))
    assert j.expire() == []  # no label seen yet: nothing can mature
    j.on_label(0, label("fraud", True, 7.5 * DAY), 7.5 * DAY)
    matured = j.expire()
    assert [m.snapshot["tx_id"] for m in matured] == ["legit"]
    assert matured[0].is_fraud is False and matured[0].source == "matured"
    assert set(j.pending) == {"late"}


def test_fraud_only_ignores_explicit_legit_labels_without_snapshot():
    j = joiner("fraud_only")
    assert j.on_label(0, label("x", False, 1.0), 1.0)[0] == "ignored"


def test_all_mode_expires_orphans_and_bounds_state():
    j = joiner()
    j.on_snapshot(0, snap("never-labelled", 0.0))
    j.on_label(0, label("never-scored", True, 1 * DAY), 1 * DAY)
    j.on_label(0, label("other", False, 15 * DAY), 15 * DAY)  # labels move 2x maturity past
    j.on_snapshot(0, snap("recent", 9 * DAY))  # transactions move maturity past the label
    assert j.expire() == []
    assert "never-labelled" not in j.pending and "never-scored" not in j.waiting
    assert j.expired == 2


def test_rebuild_after_rebalance_leaves_foreign_partitions_alone():
    j = joiner("fraud_only")
    j.on_snapshot(0, snap("mine", 0.0))
    j.on_snapshot(3, snap("theirs", 0.0))
    j.rebuild({0})
    j.on_label(0, label("z", True, 30 * DAY), 30 * DAY)
    matured = j.expire()
    assert [m.snapshot["tx_id"] for m in matured] == ["mine"]
    assert "theirs" in j.pending  # not ours to delete


def test_a_waiting_label_outlives_a_fast_source_until_the_slowest_one_passes():
    # Snapshots of one card partition come from several terminal partitions (sources),
    # scored at different speeds: only the slowest source's progress may expire a label.
    j = joiner()
    j.on_label(0, label("late", True, 10 * DAY), 10 * DAY)
    j.on_snapshot(0, {**snap("slow-1", 1 * DAY), "via": 1})
    j.on_snapshot(0, {**snap("fast-1", 30 * DAY), "via": 2})  # far past 10 d + 7 d maturity
    j.expire()
    assert j.waiting.get(0, "late") is not None  # source 1 may still send its snapshot
    joined = j.on_snapshot(0, {**snap("late", 9 * DAY), "via": 1})
    assert [x.snapshot["tx_id"] for x in joined] == ["late"]
    # A label that never gets a snapshot expires once every source has moved past it.
    j.on_label(0, label("orphan", False, 11 * DAY), 11 * DAY)
    j.on_snapshot(0, {**snap("slow-2", 19 * DAY), "via": 1})
    j.expire()
    assert j.waiting.get(0, "orphan") is None and j.expired == 1


def test_watermarks_are_per_partition():
    j = joiner("fraud_only")
    j.on_snapshot(3, snap("quiet", 1 * DAY))
    j.on_label(5, label("elsewhere", True, 30 * DAY), 30 * DAY)  # another partition's labels
    assert j.expire() == []  # partition 3's labels have not moved: nothing matures there
    assert j.pending.get(0, "quiet") is not None


def test_a_stalled_label_feed_keeps_pending_snapshots_at_their_cap_oldest_dropped_first():
    j = LabelJoiner(DictStore(), DictStore(), mode="all", maturity_s=7 * DAY, max_pending=1000)
    sizes = []
    for i in range(20_000):  # transactions keep coming, no label ever does
        j.on_snapshot(0, snap(f"tx{i}", 1767225600.0 + i))
        if i % 1000 == 999:
            sizes.append(len(j.pending))
    assert sizes == [1000] * 20  # flat once at the cap
    assert j.dropped["snapshot"] == 19_000
    assert j.pending.get(0, "tx0") is None and j.pending.get(0, "tx19999") is not None
    assert j.pending.get(0, "tx19000") is not None and j.pending.get(0, "tx18999") is None


def test_a_flood_of_labels_for_unknown_transactions_is_capped():
    j = LabelJoiner(DictStore(), DictStore(), mode="all", maturity_s=7 * DAY, max_waiting=500)
    for i in range(5000):
        outcome, _ = j.on_label(i % 4, label(f"ghost{i}", True, 1767225600.0 + i), 1767225600.0 + i)
        assert outcome == "waiting"
    assert len(j.waiting) == 500 and j.dropped["label"] == 4500
    assert j.waiting.get(0, "ghost4999") is not None and j.waiting.get(0, "ghost0") is None
    # a real pair still joins at the cap
    j.on_label(0, label("real", False, 1767300000.0), 1767300000.0)
    assert j.on_snapshot(0, snap("real", 1767299000.0))[0].snapshot["tx_id"] == "real"


def test_the_cap_skips_entries_already_joined():
    j = LabelJoiner(DictStore(), DictStore(), mode="all", maturity_s=7 * DAY, max_pending=2)
    j.on_snapshot(0, snap("a", 1.0))
    j.on_label(0, label("a", False, 10.0), 10.0)  # joins: "a" is no longer pending
    j.on_snapshot(1, snap("b", 2.0))
    j.on_snapshot(1, snap("c", 3.0))
    j.on_snapshot(0, snap("d", 4.0))
    assert sorted(j.pending) == ["c", "d"] and j.dropped["snapshot"] == 1
