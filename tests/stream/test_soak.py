"""The soak command's arithmetic (the command itself is a measurement, run by hand)."""

import os

from fraudstream.stream.processes import quantile_between as _quantile
from fraudstream.stream.soak import _rss_mb


def test_quantiles_come_from_the_interval_between_two_scrapes():
    before = {0.01: 100.0, 0.05: 100.0, 0.25: 100.0, float("inf"): 100.0}
    after = {0.01: 150.0, 0.05: 190.0, 0.25: 199.0, float("inf"): 200.0}  # 100 new observations
    assert _quantile(before, after, 0.5) == 0.01
    assert _quantile(before, after, 0.9) == 0.05
    assert _quantile(before, after, 0.99) == 0.25
    assert _quantile(before, after, 1.0) == float("inf")
    assert _quantile(after, after, 0.5) is None  # nothing observed in between


def test_resident_memory_is_read_from_proc():
    assert 1 < _rss_mb(os.getpid()) < 100_000
    assert _rss_mb(2**30) is None
