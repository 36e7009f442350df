"""The prequential replay: labels reach the learner only when they would live."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.models.online import OnlineLearner
from fraudstream.models.online_eval import prequential_replay


class Recorder:
    """A learner that logs what it is asked, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float, bool | None]] = []

    def predict_proba_many(self, X):
        self.log += [("score", x["t"], None) for x in X]
        return np.full(len(X), 0.5)

    def learn_one(self, x, y):
        self.log.append(("learn", x["t"], bool(y)))
        return True


def frame(ts, fraud):
    ts = np.asarray(ts, dtype=float)
    return pd.DataFrame({"t": ts}), ts, np.asarray(fraud, dtype=bool)


def test_every_label_is_learned_only_after_its_delay_and_after_its_score():
    features, ts, y = frame([0, 1, 2, 10, 11, 12.5, 30], [0, 1, 0, 0, 1, 0, 0])
    rec = Recorder()
    run = prequential_replay(features, ts, y, ["t"], rec, delay_s=10.0, micro_batch=3)
    assert run.learned == 6  # known by the last transaction (t = 30): all but its own
    scored = [-np.inf] + [t for kind, t, _ in rec.log if kind == "score"] + [np.inf]
    k = 0  # scores so far
    for kind, t, _ in rec.log:
        if kind == "score":
            k += 1
        else:  # known by the next transaction scored, and not by the one before
            assert scored[k] < t + 10.0 <= scored[k + 1]
    assert [t for kind, t, _ in rec.log if kind == "score"] == sorted(ts)
    assert np.all(run.scores == 0.5)
    assert run.first_label_ts == 10.0  # the first transaction's label


def test_fraud_only_learns_legitimate_rows_when_the_label_watermark_passes_them():
    # Frauds at 5 and 40 (labels at 15 and 50); legitimate rows mature at ts + 10 only when a
    # fraud label at or after that time arrives.
    features, ts, y = frame([0, 3, 5, 6, 20, 40, 45, 60, 70], [0, 0, 1, 0, 0, 1, 0, 0, 0])
    rec = Recorder()
    run = prequential_replay(features, ts, y, ["t"], rec, delay_s=10.0, label_mode="fraud_only")
    assert run.first_label_ts == 15.0  # nothing is learned before the first fraud label
    learned = [(t, label) for kind, t, label in rec.log if kind == "learn"]
    # At 15 (fraud 5's label): 0 and 3 are mature; at 50: 6, 20, and fraud 40; 45 needs 55+.
    assert learned == [(0.0, False), (3.0, False), (5.0, True),
                       (6.0, False), (20.0, False), (40.0, True)]


def test_a_real_learner_ranks_a_separable_stream_and_bad_modes_are_refused():
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.random(n) < 0.05
    x = rng.normal(size=n) + 3.0 * y
    ts = np.arange(n, dtype=float)
    features = pd.DataFrame({"x": x})
    for mode in ("all", "fraud_only"):
        run = prequential_replay(features, ts, y, ["x"], OnlineLearner(seed=0), delay_s=50.0,
                                 label_mode=mode)
        late = ts > 2000
        from sklearn.metrics import average_precision_score

        assert average_precision_score(y[late], run.scores[late]) > 0.5
        assert run.score_seconds > 0 and run.learned > 3000
    with pytest.raises(ValueError, match="label_mode"):
        prequential_replay(features, ts, y, ["x"], OnlineLearner(), 1.0, label_mode="some")


def test_fraud_only_watermarks_are_per_partition():
    """A legitimate row waits for a fraud label on its own partition (stream/joiner.py)."""
    from fraudstream.stream.stages import partition_for

    cards = [f"c{i}" for i in range(40)]
    a = next(c for c in cards if partition_for(c, 2) == 0)
    b = next(c for c in cards if partition_for(c, 2) == 1)
    # b legit at 0 (mature at 10), a fraud at 5 (label 15), a legit at 20 (mature at 30),
    # b fraud at 30 (label 40), a legit at 50.
    features, ts, y = frame([0, 5, 20, 30, 50], [0, 1, 0, 1, 0])
    ids = [b, a, a, b, a]

    def replay(**kw):
        rec = Recorder()
        prequential_replay(features, ts, y, ["t"], rec, delay_s=10.0, label_mode="fraud_only",
                           **kw)
        return [(kind, t) for kind, t, _ in rec.log]

    one = replay()  # one watermark: a's label at 15 frees b's row
    assert [t for kind, t in one if kind == "learn"] == [0.0, 5.0, 20.0, 30.0]
    assert one.index(("learn", 0.0)) < one.index(("score", 20.0))
    two = replay(partitions=2, card_ids=ids)  # b's row waits for b's label at 40; a's at 20
    assert [t for kind, t in two if kind == "learn"] == [5.0, 0.0, 30.0]  # never frees
    assert two.index(("learn", 0.0)) > two.index(("score", 30.0))
    with pytest.raises(ValueError, match="card_ids"):
        replay(partitions=2)
