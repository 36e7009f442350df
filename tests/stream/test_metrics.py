"""stream/metrics.py: the batch observation the scoring path uses in place of observe()."""

from __future__ import annotations

import math

from fraudstream.stream.metrics import LATENCY_BUCKETS, observe_many
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram


def _samples(h: Histogram) -> dict[str, float]:
    return {f"{s.name}{sorted(s.labels.items())}": s.value
            for metric in h.collect() for s in metric.samples if not s.name.endswith("_created")}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-1e300, max_value=1e300) | st.sampled_from([math.nan, math.inf, -math.inf])
                | st.sampled_from(list(LATENCY_BUCKETS) + [0.0, -0.0, 120.0001]), max_size=60),
       st.booleans())
def test_observing_a_batch_gives_the_buckets_and_sum_of_observing_each_value(values, labelled):
    registry = CollectorRegistry()
    kw = {"labelnames": ["stage"]} if labelled else {}
    one = Histogram("one_by_one", "", buckets=LATENCY_BUCKETS, registry=registry, **kw)
    batch = Histogram("batched", "", buckets=LATENCY_BUCKETS, registry=registry, **kw)
    if labelled:
        one, batch = one.labels("score"), batch.labels("score")
    for v in values:
        one.observe(v)
    observe_many(batch, values)

    a, b = _samples(one), _samples(batch)
    assert len(a) == len(b) == len(LATENCY_BUCKETS) + 3  # buckets, +Inf, count, sum
    for (ka, va), (kb, vb) in zip(sorted(a.items()), sorted(b.items())):
        assert ka.replace("one_by_one", "batched") == kb
        if ka.startswith("one_by_one_sum"):  # the order of additions differs
            assert (math.isnan(va) and math.isnan(vb)) or va == vb or math.isclose(
                va, vb, rel_tol=1e-9, abs_tol=1e-9), (va, vb)
        else:
            assert va == vb, (ka, va, vb)


def test_each_process_exports_its_cpu_and_memory_under_its_part_of_the_service():
    from fraudstream.stream.metrics import TrainerMetrics, WorkerMetrics

    parts = {}
    for part in ("score", "label", "all"):
        parts[part] = CollectorRegistry()
        WorkerMetrics(parts[part], role=part)
    parts["trainer"] = CollectorRegistry()
    TrainerMetrics(parts["trainer"])
    for part, registry in parts.items():
        labels = {"process": part}
        first = registry.get_sample_value("fraudstream_process_cpu_seconds_total", labels)
        sum(i * i for i in range(300_000))  # some CPU
        second = registry.get_sample_value("fraudstream_process_cpu_seconds_total", labels)
        assert 0 < first < second, part  # read at each scrape, not when declared
        rss = registry.get_sample_value("fraudstream_process_resident_memory_bytes", labels)
        assert rss is not None and rss > 10 * 2**20, part  # a Python process with numpy
