"""The collector's pauses reach the histogram, and the callback takes no lock."""

import gc

from prometheus_client import CollectorRegistry, Histogram

from fraudstream.stream.gc_watch import FULL_AFTER_YOUNGER, GcWatch, settle_heap


def test_every_collection_is_observed_once_by_generation():
    registry = CollectorRegistry()
    h = Histogram("pause", "pause", ["generation"], registry=registry)
    watch = GcWatch()
    try:
        watch.drain(h)  # whatever ran before
        gc.collect(0)
        gc.collect(2)
        assert watch.drain(h) >= 2
        assert registry.get_sample_value("pause_count", {"generation": "2"}) >= 1
        assert registry.get_sample_value("pause_count", {"generation": "0"}) >= 1
        assert watch.drain(h) == 0  # drained: nothing observed twice
    finally:
        watch.close()
    gc.collect(2)
    assert watch.drain(h) == 0  # closed: no longer listening


def test_settling_freezes_what_is_held_and_makes_full_collections_rarer():
    before = gc.get_threshold()
    try:
        held = [[i] for i in range(1000)]  # long-lived containers
        frozen = settle_heap()
        assert frozen >= len(held) and gc.get_freeze_count() == frozen
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2] and full == FULL_AFTER_YOUNGER > before[2]
        # the young generations run as before: a full collection only every 100th time
        watch, n_full = GcWatch(), 0
        try:
            registry = CollectorRegistry()
            h = Histogram("pause", "pause", ["generation"], registry=registry)
            watch.drain(h)
            churn = []
            for i in range(3_000_000):  # cyclic garbage enough for ~40 generation-1 runs
                a = []
                a.append(a)
                if i % 1000 == 0:
                    churn.append(a)
            watch.drain(h)
            n_full = registry.get_sample_value("pause_count", {"generation": "2"}) or 0
            n_middle = registry.get_sample_value("pause_count", {"generation": "1"}) or 0
        finally:
            watch.close()
        assert n_middle >= 20 and n_full <= n_middle / 20
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
