"""``fraudstream trainer``: the background model refresh, its own process.

The loop keeps the training window current (:mod:`.trainer_window`), starts a cycle on
schedule, on enough new frauds, or on request (the control topic, ``fraudstream retrain``),
and runs it in a thread with a time limit while it keeps reading. A cycle fits the refresh
(:func:`~fraudstream.models.refresh.run_cycle`) under the augmentation ledger's plan and hands
the result to the :class:`~.publisher.Publisher` (registry, promotion, ``model-updates``).
Workers never wait for it: if it crashes, hangs or runs out of memory, scoring goes on.

No record on the topics it reads can stop it: an invalid control request is counted in
``fraudstream_trainer_control_refused_total{topic="control"}`` and logged at most once per
``_LOG_EVERY_S`` per reason; training examples and model-updates records likewise.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry, start_http_server

from ..models.batch import XGBParams
from ..models.features import feature_names, schema_hash
from ..models.formats import fmt_number
from ..models.ledger import LedgerConfig, after_cycle, plan, summarize
from ..models.refresh import CycleTimeout, Deadline, NotEnoughData, RefreshConfig, run_cycle
from ..models.registry import ArtifactError, Registry
from ..models.synthetic_effect import synthetic_effect
from ..models.window import WindowData
from .announce import RefusalLog, printable, safe_decode, tail_consumer
from .config import Settings
from .logs import limit_client_logs
from .metrics import TrainerMetrics
from .publisher import Publisher
from .schedule import Schedule
from .topics import create_topics
from .trainer_window import WindowReader

__all__ = ["Trainer", "RetrainRequests", "ledger_config", "pick_trigger", "refresh_config",
           "run_trainer"]

log = logging.getLogger("fraudstream.trainer")
_HANG_GRACE_S = 120.0  # past the time limit plus this, a cycle that ignores its deadline is hung
_LOG_EVERY_S = 10.0
_REQUESTS_NAMED = 10  # retrain requests logged by id per cycle; a flood of them is only counted


def refresh_config(s: Settings) -> RefreshConfig:
    return RefreshConfig(
        holdout_days=s.trainer_holdout_days,
        gap_days=s.label_delay_days if s.trainer_gap_days is None else s.trainer_gap_days,
        min_frauds=s.trainer_min_frauds,
        min_fit_frauds=s.trainer_min_fit_frauds,
        synthetic_ratio=s.trainer_synthetic_ratio,
        diffusion_steps=s.trainer_diffusion_steps,
        synthesis_model=s.trainer_synthesis_model,
        synthesis_target=s.trainer_synthesis_target,
        oversample=s.trainer_synthesis_oversample,
        device=s.trainer_device,
        max_c2st_auc=s.trainer_max_c2st_auc,
        max_dcr_share=s.trainer_max_dcr_share,
        promote_margin=s.trainer_promote_margin,
        promote_confidence=s.trainer_promote_confidence,
        stale_after_days=s.trainer_stale_after_days,
        bootstrap_resamples=s.trainer_bootstrap_resamples,
        # A ratio of 0 switches augmentation off altogether: nothing to choose from.
        ratio_candidates=s.trainer_synthetic_ratios if s.trainer_synthetic_ratio > 0 else (),
        validation_days=s.trainer_validation_days,
        threshold=s.review_threshold,
        top_k_cards=s.trainer_top_k_cards,
        alert_budget=s.trainer_alert_budget,
        xgb=XGBParams(n_estimators=s.trainer_xgb_estimators, max_depth=s.trainer_xgb_max_depth,
                      n_jobs=s.trainer_threads, seed=s.seed),
        seed=s.seed,
    )


def ledger_config(s: Settings) -> LedgerConfig:
    return LedgerConfig(cycles=s.trainer_ledger_cycles, min_cycles=s.trainer_ledger_min_cycles,
                        retest_every=s.trainer_synthesis_retest_every,
                        confidence=s.trainer_promote_confidence)


def pick_trigger(requests: int, new_frauds: int, new_frauds_trigger: int, now: float,
                 next_due: float) -> str | None:
    """Why a cycle starts now, when none runs: a request first, then enough new frauds, then
    the schedule; None while none of them holds.

    >>> pick_trigger(0, 5, 100, now=10.0, next_due=20.0) is None
    True
    >>> pick_trigger(1, 500, 100, now=30.0, next_due=20.0)
    'request'
    >>> pick_trigger(0, 100, 100, now=10.0, next_due=20.0), pick_trigger(0, 0, 100, 20.0, 20.0)
    ('new_frauds', 'schedule')
    """
    if requests:
        return "request"
    if new_frauds >= new_frauds_trigger:
        return "new_frauds"
    return "schedule" if now >= next_due else None


class RetrainRequests:
    """The retrain requests since the last cycle: all counted, the first few named."""

    def __init__(self, named: int = _REQUESTS_NAMED) -> None:
        self.named = named
        self.ids: list[str] = []
        self.count = 0

    def add(self, request: dict[str, Any]) -> None:
        self.count += 1
        if len(self.ids) < self.named:
            self.ids.append(printable(request["request_id"], 64))
            log.info("retrain requested (%s): %s", self.ids[-1],
                     printable(request.get("reason", ""), 200))

    def take(self) -> str | None:
        """The requests for the log (``a, b and 3 more``), None if there were none; clears."""
        if not self.count:
            return None
        more = f" and {self.count - len(self.ids)} more" if self.count > len(self.ids) else ""
        named = ", ".join(self.ids) + more
        self.ids, self.count = [], 0
        return named


@dataclass
class _Cycle:
    thread: threading.Thread
    started: float
    trigger: str
    outcome: str | None = None


class Trainer:
    """The trainer's loop: window, schedule, requests, one cycle thread at a time."""

    def __init__(self, settings: Settings, metrics_registry: CollectorRegistry | None = None) -> None:
        s = self.settings = settings
        self.metrics = TrainerMetrics(metrics_registry or CollectorRegistry())
        self.registry = Registry(s.model_registry, keep=s.trainer_keep_versions)
        self.names = feature_names(s.extra_features, s.feature_set)
        self.schema = schema_hash(self.names)
        self.schedule = Schedule(s.trainer_interval_s, s.trainer_cron)
        self.config = refresh_config(s)
        self.ledger_config = ledger_config(s)
        self.metrics.interval.set(self.schedule.nominal_interval())
        self.stop = threading.Event()
        self.refusals = RefusalLog(log, _LOG_EVERY_S)
        self.reader = WindowReader(s, self.names, self.metrics, self.refusals, self.stop)
        self.publisher = Publisher(s, self.registry, self.names, self.schema, self.metrics,
                                   self.refusals)
        self.requests = RetrainRequests()
        self.next_due = math.inf
        self.cycle: _Cycle | None = None
        self.cycles_done = 0
        self._last_fit_note = 0.0

    # -- the main loop -------------------------------------------------------------------
    def run(self, once: bool = False) -> int:
        """Run until stopped (``once``: rebuild, one cycle, return its exit status)."""
        s = self.settings
        removed = self.registry.clean_staging()
        if removed:
            log.warning("removed %d unfinished version(s) from the registry's staging area", removed)
        self.publisher.reconcile()
        # The ledger's gauges from the registry: a restarted trainer shows them before a cycle.
        state = self.publisher.ledger_state()
        _ledger_gauges(self.metrics, summarize(state["entries"], self.ledger_config.confidence),
                       plan(state, self.ledger_config)["on"])
        self.reader.rebuild()
        if once:
            self.start_cycle("request")
            self.cycle.thread.join()
            return 0 if self.cycle.outcome != "failed" else 1
        control = tail_consumer(s, s.topics.control, "fraudstream-trainer-control")
        now = time.time()
        self.next_due = self.schedule.next_due(now, now)
        log.info("trainer ready: cycles %s, or after %d new frauds, or on `fraudstream retrain`; "
                 "next scheduled at %s", self.schedule.describe(), s.trainer_new_frauds_trigger,
                 time.strftime("%H:%M:%S", time.localtime(self.next_due)))
        while not self.stop.is_set():
            self.reader.poll(200)
            self.read_control(control)
            self.reader.gauges()
            self.publisher.champion_gauges()
            now = time.time()
            if self.hung(now):
                return 3
            self.maybe_start(now)
        log.info("trainer stopping")
        return 0

    def read_control(self, control: KafkaConsumer) -> None:
        """Note the valid retrain requests on the control topic (without waiting)."""
        for records in control.poll(timeout_ms=0).values():
            for r in records:
                request = self.on_control(r.value)
                if request is not None:
                    self.requests.add(request)

    def on_control(self, raw: bytes | None) -> dict[str, Any] | None:
        """A valid retrain request; None, counted and logged, for anything else. Never raises."""
        exc_info = None
        try:
            got = safe_decode("control", raw)
            if got.value is not None:
                return got.value
            reason, error = "malformed", got.error
        except Exception as exc:  # no request may stop the trainer
            reason, error, exc_info = "error", f"{type(exc).__name__}: {exc}", exc
        self.metrics.refused.labels("control", reason).inc()
        self.refusals.refused(self.settings.topics.control, reason,
                              f"ignoring an invalid control request: {error}", exc_info=exc_info)
        return None

    def hung(self, now: float) -> bool:
        """True (counted as a failed cycle, logged) when the running cycle is past its time
        limit and the grace: the caller exits so the supervisor restarts the trainer."""
        cycle, limit = self.cycle, self.settings.trainer_cycle_timeout_s
        if cycle is None or not cycle.thread.is_alive():
            return False
        if now - cycle.started <= limit + _HANG_GRACE_S:
            return False
        log.error("the cycle has run %.0f s, past its limit of %.0f s: it is hung; "
                  "exiting so the supervisor restarts the trainer", now - cycle.started, limit)
        self.metrics.cycles.labels("failed", "none").inc()
        return True

    def maybe_start(self, now: float) -> str | None:
        """Start a cycle if none runs and a trigger holds (:func:`pick_trigger`); the trigger."""
        if self.cycle is not None and self.cycle.thread.is_alive():
            return None
        trigger = pick_trigger(self.requests.count, self.reader.new_frauds,
                               self.settings.trainer_new_frauds_trigger, now, self.next_due)
        if trigger is None:
            return None
        named = self.requests.take()
        if named:
            log.info("starting the cycle for request(s) %s", named)
        self.next_due = self.schedule.next_due(now, now)
        self.start_cycle(trigger)
        return trigger

    def start_cycle(self, trigger: str) -> None:
        """Snapshot the window (in this thread: it owns the window) and run a cycle thread."""
        self.metrics.triggers.labels(trigger).inc()
        t0 = time.perf_counter()
        data = self.reader.take()
        log.info("cycle %d (%s) takes the window: %d rows, %d frauds, digest %s",
                 self.cycles_done + 1, trigger, len(data), int(data.y.sum()),
                 self.reader.window.digest())
        self.metrics.phase_duration.labels("window").observe(time.perf_counter() - t0)
        cycle = _Cycle(threading.Thread(target=lambda: None), time.time(), trigger)
        cycle.thread = threading.Thread(target=self._run_cycle, args=(cycle, data),
                                        name="trainer-cycle", daemon=True)
        self.cycle = cycle
        cycle.thread.start()

    # -- one cycle -----------------------------------------------------------------------
    def _run_cycle(self, cycle: _Cycle, data: WindowData) -> None:
        m = self.metrics
        m.cycle_running.set(1)
        started = time.perf_counter()
        synthetic = "none"
        n = self.cycles_done = self.cycles_done + 1
        log.info("cycle %d (%s) started on %d rows, %d frauds", n, cycle.trigger, len(data),
                 int(data.y.sum()))
        try:
            import torch

            torch.set_num_threads(self.settings.trainer_threads)
            champion_version = self.registry.champion()
            champion, trained_until = None, None
            if champion_version:
                try:
                    champion = self.registry.load_batch_model(champion_version, self.schema)
                    trained_until = self.registry.info(champion_version).trained_until
                except ArtifactError as exc:
                    log.error("the champion %s fails verification (%s); comparing against the "
                              "online learner instead", champion_version, exc)
            effect = self.online_synthetic_effect(data)
            state = self.publisher.ledger_state()
            synthesis = plan(state, self.ledger_config)
            log.info("augmentation ledger: %s", synthesis["reason"])
            result = run_cycle(
                data, champion, self.config, champion_trained_until=trained_until,
                synthesis_off=None if synthesis["on"] else synthesis["reason"],
                deadline=Deadline(self.settings.trainer_cycle_timeout_s), progress=self._progress,
                on_phase=lambda phase, seconds: m.phase_duration.labels(phase).observe(seconds))
            synthetic = result.synthetic_verdict
            ledger = self.next_ledger(state, synthesis, result.report)
            _quality_gauges(m, result.report)
            _ledger_gauges(m, ledger["summary"], synthesis["on"])
            t_pub = time.perf_counter()
            outcome = self.publisher.publish(result, cycle.trigger, effect, ledger)
            m.phase_duration.labels("publish").observe(time.perf_counter() - t_pub)
        except NotEnoughData as exc:
            outcome = "skipped"
            log.warning("cycle %d skipped: %s", n, exc)
        except CycleTimeout as exc:
            outcome = "failed"
            log.error("cycle %d failed: %s", n, exc)
        except Exception:  # the trainer outlives a failed cycle; the next one may succeed
            outcome = "failed"
            log.exception("cycle %d failed", n)
        seconds = time.perf_counter() - started
        cycle.outcome = outcome
        m.cycles.labels(outcome, synthetic).inc()
        m.cycle_duration.observe(seconds)
        m.last_cycle.labels(outcome).set(time.time())
        m.cycle_running.set(0)
        self.publisher.champion_gauges()
        log.info("cycle %d finished in %.1f s: %s", n, seconds, outcome)

    def _progress(self, message: str) -> None:
        # Fit steps come every few hundred optimiser steps: log one each 10 s at most.
        if "fit step" in message:
            now = time.monotonic()
            if now - self._last_fit_note < 10:
                return
            self._last_fit_note = now
        log.info("%s", message)

    def next_ledger(self, state: dict[str, Any], synthesis: dict[str, Any],
                    report: dict[str, Any]) -> dict[str, Any]:
        """The ledger after this cycle, as stored in its version's metadata."""
        ledger = after_cycle(state, report, synthesis, self.ledger_config)
        summary = ledger["summary"]
        if summary["n"]:
            gain, low, high = (fmt_number(summary[k], 4, signed=True)
                               for k in ("gain", "low", "high"))
            log.info("augmentation ledger after this cycle: AP gain %s [%.0f%% interval %s, %s] "
                     "over %d measured cycle(s)%s", gain, 100 * self.ledger_config.confidence,
                     low, high, summary["n"],
                     "" if ledger["measured"] else " (this cycle measured nothing)")
        return ledger

    def online_synthetic_effect(self, data: WindowData) -> dict[str, Any] | None:
        """The online learner's prequential AP before vs after the last synthetic publication
        (:func:`~fraudstream.models.synthetic_effect.synthetic_effect`); None if none yet."""
        last = self.publisher.last_synthetic_publication()
        if last is None:
            return None
        version, pub = last
        return synthetic_effect(data, version, pub["n"], pub["at_event_ts"])


def _ledger_gauges(m: TrainerMetrics, summary: dict[str, Any], on: bool) -> None:
    for bound, key in (("estimate", "gain"), ("low", "low"), ("high", "high")):
        value = summary.get(key)
        m.ledger_gain.labels(bound).set(math.nan if value is None else value)
    m.ledger_cycles.set(summary["n"])
    m.synthesis_enabled.set(1 if on else 0)


def _quality_gauges(m: TrainerMetrics, report: dict[str, Any]) -> None:
    q = report.get("quality") or {}
    if q.get("c2st_auc") is not None:
        m.c2st_auc.set(q["c2st_auc"])
    if q.get("dcr_share") is not None:
        m.dcr_share.set(q["dcr_share"])
    comparisons = report.get("comparisons") or {}
    for comparison in ("challenger_vs_champion", "synthetic"):
        gain = comparisons.get(comparison) or {}
        for bound, key in (("estimate", "estimate"), ("low", "low"), ("high", "high")):
            value = gain.get(key)
            m.ap_gain.labels(comparison, bound).set(math.nan if value is None else value)
    m.promotion_verdicts.labels(report["decision"]["verdict"]).inc()
    staleness = report["decision"].get("champion_staleness_days")
    m.champion_staleness.set(math.nan if staleness is None else staleness)
    m.synthetic_ratio.set(report["synthetic"].get("ratio") or 0.0)
    for model, values in report["holdout"].items():
        for metric in ("average_precision", "card_precision_at_k", "recall_at_budget"):
            value = values.get(metric)
            m.holdout.labels(model, metric).set(math.nan if value is None else value)


def run_trainer(settings: Settings, once: bool = False) -> int:
    """Start the metrics endpoint and the trainer loop; returns the exit status."""
    create_topics(settings)
    if settings.trainer_nice:
        # On a host shared with workers, a diffusion fit must not take CPU from scoring.
        os.nice(settings.trainer_nice)
    trainer = Trainer(settings)
    limit_client_logs()
    if settings.trainer_metrics_port:
        start_http_server(settings.trainer_metrics_port, addr=settings.metrics_bind,
                          registry=trainer.metrics.registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_bind, settings.trainer_metrics_port)

    def stop(signum: int, frame: Any) -> None:
        log.info("signal %d: stopping after the current poll", signum)
        trainer.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    trainer.publisher.champion_gauges()
    return trainer.run(once=once)
