"""Event time in days: day numbers and UTC dates."""

import numpy as np

from fraudstream.models.days import DAY_S, day_index, utc_date, utc_iso


def test_day_numbers_count_whole_days_from_the_start():
    ts = np.array([-1.0, 0.0, DAY_S - 1, DAY_S, 2.5 * DAY_S]) + 1000.0
    assert day_index(ts, 1000.0).tolist() == [-1, 0, 0, 1, 2]
    assert day_index(ts, 1000.0).dtype == np.int64


def test_utc_dates():
    assert utc_iso(1_700_000_000.0) == "2023-11-14T22:13:20Z"
    assert utc_date(1_700_000_000.0) == "2023-11-14"
