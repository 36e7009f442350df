"""The handbook's validation windows: the gap, consecutive test windows, known cards."""

import numpy as np
import pytest

from fraudstream.models.days import DAY_S
from fraudstream.models.evaluation_windows import protocol_windows, required_days, split_window


def test_windows_respect_the_gap_and_test_windows_do_not_overlap():
    windows = protocol_windows(
        100.0, 4, train_days=7, delay_days=5, test_days=3, burn_in_days=10
    )
    assert [w.index for w in windows] == [0, 1, 2, 3]
    assert windows[0].train_start == 100.0 + 10 * DAY_S
    for w in windows:
        assert w.train_end - w.train_start == 7 * DAY_S
        assert w.test_start - w.train_end == 5 * DAY_S  # the label-delay gap
        assert w.test_end - w.test_start == 3 * DAY_S
    for a, b in zip(windows, windows[1:]):
        assert b.test_start == a.test_end  # consecutive, shifted by the test length
        assert b.train_start - a.train_start == 3 * DAY_S
    assert windows[-1].test_end == 100.0 + required_days(
        4, train_days=7, delay_days=5, test_days=3, burn_in_days=10
    ) * DAY_S
    with pytest.raises(ValueError):
        protocol_windows(0.0, 0)


def test_split_window_drops_cards_whose_fraud_label_has_arrived():
    (w,) = protocol_windows(0.0, 1, train_days=2, delay_days=1, test_days=2)
    # test days start at 3d and 4d; a fraud is known on a test day if ts < day start - 1d.
    rows = [  # (day, card, fraud)
        (-1.0, "D", 1),  # before training: not counted, as in the handbook
        (0.5, "A", 1),  # training fraud: A is known for the whole test
        (1.0, "B", 0),
        (2.5, "B", 1),  # in the gap: known from test day 1 (4d - 1d = 3d > 2.5d)
        (3.2, "C", 1),  # test day 0: not known yet on test day 1 (4d - 1d = 3d < 3.2d)
        (3.5, "A", 0),
        (3.5, "B", 0),
        (3.6, "D", 0),
        (4.5, "A", 0),
        (4.5, "B", 0),
        (4.6, "C", 1),
        (5.5, "C", 0),  # after the test window
    ]
    ts = np.array([r[0] for r in rows]) * DAY_S
    card = np.array([r[1] for r in rows], dtype=object)
    y = np.array([r[2] for r in rows])
    train, test = split_window(ts, card, y, w, delay_days=1)
    assert train.tolist() == [1, 2]
    kept = [(rows[i][0], rows[i][1]) for i in test]
    assert kept == [(3.2, "C"), (3.5, "B"), (3.6, "D"), (4.6, "C")]
    _, everything = split_window(ts, card, y, w, delay_days=1, exclude_known_cards=False)
    assert everything.tolist() == list(range(4, 11))
