"""The collector's pauses reach the histogram, and the callback takes no lock."""

import gc

from prometheus_client import CollectorRegistry, Histogram

from fraudstream.stream.gc_watch import GcWatch


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
