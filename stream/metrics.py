"""Every Prometheus metric a worker exports, declared in one place.

Pass a fresh ``CollectorRegistry()`` in tests and assert with ``registry.get_sample_value``.
Labels are low-cardinality only (topic, outcome, decision, partition, model): never a card
or transaction id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

__all__ = ["WorkerMetrics", "LATENCY_BUCKETS"]

# Sub-millisecond to seconds: the SLO is p99 <= 50 ms, so resolution matters around it.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (1.0,)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000)


class WorkerMetrics:
    """The scoring worker's metrics (``fraudstream_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages_in = Counter(
            "fraudstream_messages_in_total", "Messages read, by source topic kind.",
            ["topic"], registry=registry)
        self.transactions_scored = Counter(
            "fraudstream_transactions_scored_total", "Transactions scored and written to scores.",
            registry=registry)
        self.dead_letters = Counter(
            "fraudstream_dead_letters_total", "Messages sent to a dead-letter topic, by source and reason.",
            ["topic", "reason"], registry=registry)
        self.labels = Counter(
            "fraudstream_labels_total",
            "Labels by outcome: joined (to a scoring-time snapshot), waiting (snapshot not seen yet), "
            "matured (no fraud label within the maturity period, learned as legitimate), "
            "expired (never matched).",
            ["outcome"], registry=registry)
        self.labels_waiting = Gauge(
            "fraudstream_labels_waiting", "Labels held until their transaction's snapshot arrives.",
            registry=registry)
        self.snapshots_pending = Gauge(
            "fraudstream_snapshots_pending", "Scored transactions waiting for a label.",
            registry=registry)
        self.latency = Histogram(
            "fraudstream_end_to_end_latency_seconds",
            "From the transaction's arrival in Kafka (record timestamp) to its score being produced.",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.processing = Histogram(
            "fraudstream_batch_processing_seconds", "Time to process one micro-batch, by stage.",
            ["stage"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram(
            "fraudstream_batch_size", "Messages per micro-batch, by stage.",
            ["stage"], buckets=_BATCH_BUCKETS, registry=registry)
        self.scores = Histogram(
            "fraudstream_score", "Distribution of final scores.", buckets=_SCORE_BUCKETS,
            registry=registry)
        self.decisions = Counter(
            "fraudstream_decisions_total", "Decisions by kind.", ["decision"], registry=registry)
        self.consumer_lag = Gauge(
            "fraudstream_consumer_lag", "Messages behind the high watermark, per assigned partition.",
            ["topic", "partition"], registry=registry)
        self.model_info = Info(
            "fraudstream_model", "Model versions currently used for scoring.", registry=registry)
        self.model_swaps = Counter(
            "fraudstream_model_swaps_total", "Batch-model announcements by outcome.",
            ["outcome"], registry=registry)
        self.prequential_ap = Gauge(
            "fraudstream_online_prequential_average_precision",
            "Online learner's average precision on the sliding window of labelled transactions, "
            "each scored before its label was learned.", registry=registry)
        self.prequential_recall = Gauge(
            "fraudstream_online_prequential_recall_at_review",
            "Share of labelled frauds in the window whose score reached the review threshold.",
            registry=registry)
        self.prequential_base_rate = Gauge(
            "fraudstream_online_prequential_fraud_rate",
            "Fraud rate among the labelled transactions in the window.", registry=registry)
        self.learned = Counter(
            "fraudstream_online_learned_total", "Examples the online learner learned, by label.",
            ["label"], registry=registry)
