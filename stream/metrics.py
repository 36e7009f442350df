"""Every Prometheus metric a worker exports, declared in one place.

Pass a fresh ``CollectorRegistry()`` in tests and assert with ``registry.get_sample_value``.
Labels are low-cardinality only (topic, outcome, decision, partition, model): never a card
or transaction id.
"""

from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["WorkerMetrics", "TrainerMetrics", "ProcessUsage", "LATENCY_BUCKETS", "CYCLE_PHASES",
           "observe_many"]

# Sub-millisecond to seconds: the SLO is p99 <= 50 ms, so resolution matters around it. The
# top buckets (up to 2 min) measure a backlog instead of capping it at 10 s: a worker behind
# its load showed "p99 <= 10 s" in the demo when its transactions waited longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20)) + (1.0,)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, in one pass: the same bucket counts and sum.

    ``observe`` walks the buckets in Python, ~1-2 us a value, twice per scored transaction;
    here one ``searchsorted`` places a micro-batch. It reaches into prometheus_client's
    histogram (its bounds, bucket and sum values, as of 0.2x): a test compares it with
    ``observe`` value by value, so a client that changes them fails there, not on a dashboard.
    """
    if not len(values):
        return
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    v = np.asarray(values, dtype=np.float64)
    # observe() counts a value in the first bucket with ``value <= bound``; NaN in none.
    where = np.searchsorted(bounds, v, side="left")
    for i, n in enumerate(np.bincount(where, minlength=len(bounds) + 1)[:len(bounds)].tolist()):
        if n:
            histogram._buckets[i].inc(n)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN sum as observe's do
        histogram._sum.inc(float(v.sum()))


class ProcessUsage:
    """This process's CPU seconds and resident memory, read at each scrape and labelled with
    its part of the service (``score``, ``label``, ``all``: a worker's processes; ``trainer``):
    which process takes the cores is what a worker's latency tail follows (README, known
    issues). A collector, not a Gauge, so nothing has to keep it current."""

    def __init__(self, registry: CollectorRegistry, process: str) -> None:
        self.process = process
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily("fraudstream_process_cpu_seconds",
                                  "CPU seconds (user and system) of this process.",
                                  labels=["process"])
        cpu.add_metric([self.process], time.process_time())
        yield cpu
        rss = GaugeMetricFamily("fraudstream_process_resident_memory_bytes",
                                "Resident memory of this process (Linux).", labels=["process"])
        try:  # /proc/self/statm: sizes in pages, resident second
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
            rss.add_metric([self.process], pages * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, IndexError):
            pass  # no /proc here: the family has no sample
        yield rss


def _counter_from_zero(name: str, doc: str, label: str, values: Iterable[str],
                       registry: CollectorRegistry) -> Counter:
    """A counter with one label whose every value exists from the start at 0: rate() and
    increase() cannot see the first event of a series that appears already at 1."""
    counter = Counter(name, doc, [label], registry=registry)
    for value in values:
        counter.labels(value)
    return counter


# Which process of a worker exports what (WorkerMetrics(role=...)): a series a process never
# moves is not exported there, so no dashboard or alert reads a second, idle copy of it (a
# prequential AP of 0 from the scoring process, say). Inline, one process exports both.
_LABEL_PATH = ("labels", "labels_waiting", "snapshots_pending", "label_deferred",
               "prequential_ap", "prequential_recall", "prequential_base_rate", "learned",
               "synthetic_learned", "synthetic_refused", "model_prequential_ap", "join_dropped",
               "learn_refused")
_SCORE_PATH = ("transactions_scored", "latency", "scores", "decisions", "model_info",
               "model_swaps", "model_refusals", "score_fallbacks", "worker_ready",
               "terminal_view_terminals", "terminal_view_lag", "terminal_view_rejected",
               "terminal_view_bytes", "terminal_view_save", "terminal_view_refused",
               "learner_syncs", "learner_examples")


class WorkerMetrics:
    """A worker's metrics (``fraudstream_*``): ``role`` is ``score`` or ``label`` for one of
    its two processes, ``all`` where one process does both (and in tests)."""

    def __init__(self, registry: CollectorRegistry, role: str = "all") -> None:
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
        self.label_deferred = Histogram(
            "fraudstream_label_deferred_seconds",
            "How long a label batch waited for queued transactions to be scored first.",
            buckets=LATENCY_BUCKETS, registry=registry)
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
        # Every label set exists from the start at 0: rate() and increase() cannot see the
        # first event of a series that appears already at 1, so alerts would miss it.
        from .stages import REASON_CLASSES

        for source in ("transactions", "labels"):
            for reason in REASON_CLASSES:
                self.dead_letters.labels(source, reason)
        for outcome in SWAP_OUTCOMES:
            self.model_swaps.labels(outcome)
        self.synthetic_learned = Counter(
            "fraudstream_online_synthetic_learned_total",
            "Synthetic frauds from the trainer the online learner learned (after the cap).",
            registry=registry)
        # Control plane (docs/operations.md, "Hostile input"): refused records are counted here.
        self.model_refusals = Counter(
            "fraudstream_model_refusals_total",
            "model-updates records refused, by role (champion, shadow, none: no known role) and "
            "reason; each also counts in fraudstream_model_swaps_total{outcome=\"refused\"}.",
            ["role", "reason"], registry=registry)
        for model_role in ("champion", "shadow", "none"):
            for reason in ANNOUNCEMENT_REFUSALS:
                self.model_refusals.labels(model_role, reason)
        self.synthetic_refused = Counter(
            "fraudstream_synthetic_refused_total",
            "synthetic-frauds records the online learner did not learn, by reason.",
            ["reason"], registry=registry)
        for reason in SYNTHETIC_REFUSALS:
            self.synthetic_refused.labels(reason)
        self.model_prequential_ap = Gauge(
            "fraudstream_model_prequential_average_precision",
            "Average precision of the batch models on the window of labelled transactions, "
            "by role (champion decides, shadow is only reported), from their scoring-time scores.",
            ["role"], registry=registry)
        # Fail-safe accounting (docs/operations.md, "Hostile input").
        self.score_fallbacks = _counter_from_zero(
            "fraudstream_score_fallbacks_total",
            "Transactions whose deciding model gave no finite score, by what decided instead: "
            "champion_failed (the online learner decided), no_finite_score (review), "
            "scoring_error (review).",
            "reason", FALLBACK_REASONS, registry)
        self.processing_errors = _counter_from_zero(
            "fraudstream_processing_errors_total",
            "Records whose processing raised, by stage; each is dead-lettered as "
            "processing_error and its micro-batch carries on.",
            "stage", PROCESSING_STAGES, registry)
        self.join_dropped = _counter_from_zero(
            "fraudstream_join_dropped_total",
            "Label-join entries dropped at their cap (FRAUDSTREAM_MAX_PENDING_SNAPSHOTS, "
            "FRAUDSTREAM_MAX_WAITING_LABELS), oldest first, by kind (snapshot, label).",
            "kind", ("snapshot", "label"), registry)
        self.learn_refused = Counter(
            "fraudstream_online_learn_refused_total",
            "Labelled examples the online learner refused (non-finite features or weights); "
            "it kept its previous weights.", registry=registry)
        # Recovery and the terminal replica (stream/state.py, stream/terminal_view.py).
        self.worker_ready = Gauge(
            "fraudstream_worker_ready_seconds",
            "Seconds from the worker's start until it could score (its terminal replica caught "
            "up with the topic); set once per process.", registry=registry)
        self.terminal_view_terminals = Gauge(
            "fraudstream_terminal_view_terminals", "Terminals in this worker's replica.",
            registry=registry)
        self.terminal_view_lag = Gauge(
            "fraudstream_terminal_view_lag_records",
            "Terminal events not yet applied to this worker's replica (all partitions).",
            registry=registry)
        self.terminal_view_rejected = Gauge(
            "fraudstream_terminal_view_rejected_events",
            "Malformed terminal events skipped since start (the topic is internal: expect 0).",
            registry=registry)
        self.terminal_view_bytes = Gauge(
            "fraudstream_terminal_view_saved_bytes", "Size of the last saved replica file.",
            registry=registry)
        self.loop_lag = Histogram(
            "fraudstream_event_loop_lag_seconds",
            "How late the worker's event loop woke a 50 ms timer: the longest it was held by "
            "one piece of work (a micro-batch, a label batch, a periodic job) meanwhile.",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.gc_pause = Histogram(
            "fraudstream_gc_pause_seconds",
            "Python garbage-collector pauses by generation (the event loop waits meanwhile).",
            ["generation"], buckets=LATENCY_BUCKETS, registry=registry)
        self.state_writes = Counter(
            "fraudstream_state_writes_total",
            "Keys the offset commits wrote to RocksDB and to the table's changelog, by table: "
            "a key changed several times between two commits is written once, one put and "
            "deleted between them not at all.", ["table"], registry=registry)
        self.periodic_job = Histogram(
            "fraudstream_worker_periodic_job_seconds",
            "Time a periodic job held the worker's event loop (scoring waits meanwhile).",
            ["job"], buckets=LATENCY_BUCKETS, registry=registry)
        self.terminal_view_save = Histogram(
            "fraudstream_terminal_view_save_seconds", "Time to save the replica (blocks the loop).",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.terminal_view_refused = Counter(
            "fraudstream_terminal_view_refused_total",
            "Saved replicas refused at start (unreadable, or another topic or label delay); the "
            "replica was rebuilt from the topic.", registry=registry)
        self.checkpoint_refused = _counter_from_zero(
            "fraudstream_online_checkpoint_refused_total",
            "Online-learner checkpoints not loaded (digest mismatch, missing sidecar, "
            "non-finite weights) or not written (non-finite weights), by action.",
            "action", ("load", "save"), registry)
        self.learner_syncs = _counter_from_zero(
            "fraudstream_online_learner_syncs_total",
            "Online learners the scoring process took from its label process's checkpoint "
            "(loaded), or left (refused: unreadable or not verified; the next sync retries).",
            "outcome", ("loaded", "refused"), registry)
        self.learner_examples = Gauge(
            "fraudstream_online_learner_examples",
            "Examples learned by the online learner this process scores with.", registry=registry)
        if role != "all":
            for name in _LABEL_PATH if role == "score" else _SCORE_PATH:
                registry.unregister(getattr(self, name))
        self.process_usage = ProcessUsage(registry, role)


SWAP_OUTCOMES = ("loaded", "unchanged", "refused", "cleared")
# Why a model-updates record was refused (stream/announce.py, stream/model_follower.py).
ANNOUNCEMENT_REFUSALS = ("malformed", "unknown_role", "role_mismatch", "champion_clear",
                         "no_checksum", "feature_schema", "artifact", "not_champion", "error")
# Why a synthetic fraud was not learned (stream/model_follower.py).
SYNTHETIC_REFUSALS = ("disabled", "malformed", "feature_schema", "missing_features",
                      "unknown_features", "non_finite", "out_of_bounds", "learner_refused", "error")
# Why the trainer refused a control-plane record, by topic kind.
TRAINER_REFUSALS = {"control": ("malformed", "error"),
                    "model-updates": ANNOUNCEMENT_REFUSALS}
FALLBACK_REASONS = ("champion_failed", "no_finite_score", "scoring_error")
PROCESSING_STAGES = ("score", "join", "label", "learn")
CYCLE_OUTCOMES = ("promoted", "kept_champion", "skipped", "failed")
PROMOTION_VERDICTS = ("better", "indistinguishable", "worse", "no_champion_scores", "undefined")
SYNTHETIC_VERDICTS = ("accepted", "rejected", "none")
TRIGGERS = ("schedule", "new_frauds", "request")

# The phases of one trainer cycle, in order (also the `phase` label values).
CYCLE_PHASES = ("window", "diffusion_fit", "sample", "quality", "train", "evaluate", "publish")
_CYCLE_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class TrainerMetrics:
    """The background trainer's metrics (``fraudstream_trainer_*``), on its own endpoint."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.examples = Counter(
            "fraudstream_trainer_examples_total",
            "training-examples records read, by outcome: kept, ignored (a duplicate or older than "
            "the window), invalid (outside the contract or its bounds), future (event_ts beyond "
            "the skew allowed ahead of the wall clock).",
            ["outcome"], registry=registry)
        self.refused = Counter(
            "fraudstream_trainer_control_refused_total",
            "Control-plane records the trainer refused, by topic kind (control, model-updates) "
            "and reason.", ["topic", "reason"], registry=registry)
        for topic, reasons in TRAINER_REFUSALS.items():
            for reason in reasons:
                self.refused.labels(topic, reason)
        self.window_rows = Gauge(
            "fraudstream_trainer_window_rows", "Labelled transactions in the training window.",
            registry=registry)
        self.window_frauds = Gauge(
            "fraudstream_trainer_window_frauds", "Confirmed frauds in the training window.",
            registry=registry)
        self.new_frauds = Gauge(
            "fraudstream_trainer_new_frauds", "Confirmed frauds arrived since the last cycle.",
            registry=registry)
        self.triggers = Counter(
            "fraudstream_trainer_triggers_total",
            "Cycles started, by trigger (schedule, new_frauds, request).",
            ["trigger"], registry=registry)
        self.cycles = Counter(
            "fraudstream_trainer_cycles_total",
            "Finished cycles by outcome (promoted, kept_champion, skipped: not enough data, failed) "
            "and by what happened "
            "to their synthetic frauds (accepted, rejected, none).",
            ["outcome", "synthetic"], registry=registry)
        for outcome in CYCLE_OUTCOMES:
            for verdict in SYNTHETIC_VERDICTS:
                self.cycles.labels(outcome, verdict)
        for trigger in TRIGGERS:
            self.triggers.labels(trigger)
        self.interval = Gauge(
            "fraudstream_trainer_interval_seconds",
            "The scheduled interval between cycles (with a cron schedule: the shortest gap "
            "between its next firings).", registry=registry)
        self.cycle_running = Gauge(
            "fraudstream_trainer_cycle_running", "1 while a cycle runs.", registry=registry)
        self.cycle_duration = Histogram(
            "fraudstream_trainer_cycle_duration_seconds", "Wall time of a whole cycle.",
            buckets=_CYCLE_BUCKETS, registry=registry)
        self.phase_duration = Histogram(
            "fraudstream_trainer_phase_duration_seconds", "Wall time of each cycle phase.",
            ["phase"], buckets=_CYCLE_BUCKETS, registry=registry)
        self.last_cycle = Gauge(
            "fraudstream_trainer_last_cycle_timestamp_seconds",
            "When the last cycle ended, by outcome.", ["outcome"], registry=registry)
        self.synthetic_rows = Counter(
            "fraudstream_trainer_synthetic_rows_total", "Synthetic frauds sampled.",
            registry=registry)
        self.synthetic_published = Counter(
            "fraudstream_trainer_synthetic_published_total",
            "Accepted synthetic frauds published for the workers' online learners.",
            registry=registry)
        self.c2st_auc = Gauge(
            "fraudstream_trainer_quality_c2st_auc",
            "Last cycle's C2ST AUC of synthetic vs held-out real frauds (0.5 = indistinguishable).",
            registry=registry)
        self.dcr_share = Gauge(
            "fraudstream_trainer_quality_dcr_share",
            "Last cycle's share of synthetic rows closer to a training fraud than the 5th "
            "percentile of held-out real frauds (about 0.05 when nothing is memorised).",
            registry=registry)
        self.holdout = Gauge(
            "fraudstream_trainer_holdout_metric",
            "Last cycle's holdout metrics by model (champion, challenger, "
            "challenger_no_synthetic) and metric (average_precision, card_precision_at_k, "
            "recall_at_budget).", ["model", "metric"], registry=registry)
        # Promotion on evidence and the augmentation ledger (models/paired.py, models/ledger.py).
        self.ap_gain = Gauge(
            "fraudstream_trainer_ap_gain",
            "Last cycle's holdout AP gain with its paired-bootstrap interval, by comparison "
            "(challenger_vs_champion; synthetic: with vs without synthetic rows) and bound "
            "(estimate, low, high); NaN when the cycle had no such comparison.",
            ["comparison", "bound"], registry=registry)
        self.promotion_verdicts = _counter_from_zero(
            "fraudstream_trainer_promotion_verdicts_total",
            "Cycles by what the holdout said of challenger vs champion: better (the lower bound "
            "of the AP gain cleared the margin: promoted), "
            "indistinguishable (champion kept, or replaced when stale) or worse (champion "
            "kept), no_champion_scores (promoted), undefined (kept).",
            "verdict", PROMOTION_VERDICTS, registry)
        self.champion_staleness = Gauge(
            "fraudstream_trainer_champion_staleness_days",
            "Last cycle: how many days before the challenger's the champion's training rows "
            "end (NaN: no batch champion, or not recorded). With "
            "FRAUDSTREAM_TRAINER_STALE_AFTER_DAYS set, from that age a tie promotes the "
            "challenger.",
            registry=registry)
        self.ledger_gain = Gauge(
            "fraudstream_trainer_augmentation_ledger_ap_gain",
            "The augmentation ledger's mean AP gain from synthetic rows over its last measured "
            "cycles, by bound (estimate, low, high); NaN before the first measurement.",
            ["bound"], registry=registry)
        self.ledger_cycles = Gauge(
            "fraudstream_trainer_augmentation_ledger_cycles",
            "Measured cycles in the augmentation ledger.", registry=registry)
        self.synthesis_enabled = Gauge(
            "fraudstream_trainer_synthesis_enabled",
            "1 when the last cycle's plan ran synthesis, 0 when the ledger had it off.",
            registry=registry)
        self.synthetic_ratio = Gauge(
            "fraudstream_trainer_synthetic_ratio",
            "Synthetic frauds per real training fraud in the last cycle's challenger (0: none).",
            registry=registry)
        self.champion = Info(
            "fraudstream_trainer_champion", "The current champion version.", registry=registry)
        self.champion_created = Gauge(
            "fraudstream_trainer_champion_created_timestamp_seconds",
            "When the current champion was trained (0: none yet).", registry=registry)
        self.champion_age = Gauge(
            "fraudstream_trainer_champion_age_seconds",
            "Seconds since the current champion was trained (0: none yet).", registry=registry)
        self.process_usage = ProcessUsage(registry, "trainer")
