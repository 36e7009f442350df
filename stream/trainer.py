"""``fraudstream trainer``: the background model refresh, its own process.

It keeps the training window from ``training-examples`` (rebuilt at start by seeking by
timestamp), starts a cycle on schedule, on enough new frauds, or on request (control topic),
runs it in a thread with a time limit while it keeps reading, writes the challenger to the
registry, promotes it when it wins, and announces promotions on ``model-updates``. Workers
never wait for it: if it crashes, hangs or runs out of memory, scoring goes on.

No record on the topics it reads can stop it: a training example that is not a contract
record, holds a feature beyond ``max_feature_abs`` or not finite, or is stamped more than
``max_future_skew_s`` ahead of the clock is counted (``fraudstream_trainer_examples_total``
outcome ``invalid`` or ``future``) and skipped; an invalid control request or model-updates
record is counted in ``fraudstream_trainer_control_refused_total{topic,reason}``. Refusals
are logged at most once per ``_LOG_EVERY_S`` per reason.
"""

from __future__ import annotations

import logging
import os
import math
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, start_http_server
from sklearn.metrics import average_precision_score

from ..models.batch import XGBParams
from ..models.features import feature_names, schema_hash
from ..models.ledger import LedgerConfig, advance, plan, state_from, summarize
from ..models.refresh import (
    CycleTimeout, Deadline, NotEnoughData, RefreshConfig, format_report, run_cycle,
)
from ..models.registry import (
    DIFFUSION_FILE, MODEL_FILE, ONLINE_FILE, ArtifactError, Registry,
)
from ..models.window import TrainingWindow, WindowData
from .announce import (
    LONG_LIVED_CLIENT, Announcement, RefusalLog, announce, feature_problem, latest_announcements,
    printable, producer, publish_synthetic, safe_decode, tail_consumer,
)
from .config import Settings
from .logs import limit_client_logs
from .metrics import TrainerMetrics
from .topics import create_topics

__all__ = ["Trainer", "run_trainer", "refresh_config", "ledger_config"]

log = logging.getLogger("fraudstream.trainer")
_DAY_S = 86_400.0
_HANG_GRACE_S = 120.0  # past the time limit plus this, a cycle that ignores its deadline is hung
_LOG_EVERY_S = 10.0
_REQUESTS_NAMED = 10  # retrain requests logged by id per cycle; a flood of them is only counted


def refresh_config(s: Settings) -> RefreshConfig:
    return RefreshConfig(
        holdout_days=s.trainer_holdout_days,
        gap_days=s.label_delay_days if s.trainer_gap_days is None else s.trainer_gap_days,
        min_frauds=s.trainer_min_frauds,
        synthetic_ratio=s.trainer_synthetic_ratio,
        diffusion_steps=s.trainer_diffusion_steps,
        device=s.trainer_device,
        max_c2st_auc=s.trainer_max_c2st_auc,
        max_dcr_share=s.trainer_max_dcr_share,
        promote_margin=s.trainer_promote_margin,
        promote_confidence=s.trainer_promote_confidence,
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


@dataclass
class _Cycle:
    thread: threading.Thread
    started: float
    trigger: str
    outcome: str | None = None


class Trainer:
    """The trainer's state: window, registry, schedule, metrics. ``run()`` is the main loop."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        from .schedule import Schedule

        s = self.settings = settings
        self.metrics = TrainerMetrics(registry or CollectorRegistry())
        self.registry = Registry(s.model_registry, keep=s.trainer_keep_versions)
        self.names = feature_names(s.extra_features, s.feature_set)
        self.schema = schema_hash(self.names)
        self.window = TrainingWindow(self.names, s.trainer_window_days * _DAY_S, s.trainer_max_rows,
                                     max_future_skew_s=s.max_future_skew_s)
        self.schedule = Schedule(s.trainer_interval_s, s.trainer_cron)
        self.config = refresh_config(s)
        self.ledger_config = ledger_config(s)
        self.metrics.interval.set(self.schedule.nominal_interval())
        self.stop = threading.Event()
        self.new_frauds = 0
        self.cycle: _Cycle | None = None
        self.cycles_done = 0
        self._examples: KafkaConsumer | None = None
        self._last_fit_note = 0.0
        self.refusals = RefusalLog(log, _LOG_EVERY_S)

    # -- the window ----------------------------------------------------------------------
    def open_examples(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=None,
                                 enable_auto_commit=False, client_id="fraudstream-trainer",
                                 max_poll_records=5000, **LONG_LIVED_CLIENT,
                                 **s.kafka_python_security())
        topic = s.topics.training_examples
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions (run `fraudstream topics create`)")
        self.tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(self.tps)
        self._examples = consumer
        return consumer

    def rebuild_window(self, now: float | None = None) -> dict[str, Any]:
        """Seek every partition to the records produced in the last window (+1 day of slack)
        and read up to the end offsets seen at start. Returns the window's stats."""
        consumer = self._examples or self.open_examples()
        now = time.time() if now is None else now
        since_ms = int((now - (self.settings.trainer_window_days + 1) * _DAY_S) * 1000)
        starts = consumer.offsets_for_times({tp: since_ms for tp in self.tps})
        ends = consumer.end_offsets(self.tps)
        total = 0
        for tp in self.tps:
            found = starts.get(tp)
            offset = found.offset if found is not None else ends[tp]
            consumer.seek(tp, offset)
            total += ends[tp] - offset
        log.info("rebuilding the training window: %d records in %d partitions since %s",
                 total, len(self.tps), time.strftime("%Y-%m-%d %H:%M", time.gmtime(since_ms / 1000)))
        started = last_note = time.monotonic()
        read = 0
        while any(consumer.position(tp) < ends[tp] for tp in self.tps) and not self.stop.is_set():
            read += self._consume(consumer, 500)
            if time.monotonic() - last_note > 5:
                last_note = time.monotonic()
                log.info("rebuilding the training window: %d/%d records", read, total)
        self.window.evict()
        self.new_frauds = 0
        stats = {**self.window.stats(), "digest": self.window.digest(), "records_read": read,
                 "seconds": round(time.monotonic() - started, 2)}
        log.info("training window rebuilt: %(rows)d rows, %(frauds)d frauds, digest %(digest)s "
                 "(%(records_read)d records in %(seconds)s s)", stats)
        self._window_gauges()
        return stats

    def _consume(self, consumer: KafkaConsumer, timeout_ms: int) -> int:
        n = 0
        for records in consumer.poll(timeout_ms=timeout_ms).values():
            for r in records:
                n += 1
                self.on_example(r.value, f"{r.topic}/{r.partition}@{r.offset}")
        return n

    def on_example(self, raw: bytes | None, where: str = "", now: float | None = None) -> str:
        """Put one training-examples record into the window; returns its outcome: kept,
        ignored (a duplicate, or older than the window), future (stamped more than
        ``max_future_skew_s`` past ``now``, the wall clock by default) or invalid. Never raises.
        """
        now = time.time() if now is None else now
        outcome, problem, exc_info = "invalid", None, None
        try:
            got = safe_decode("training-examples", raw, max_bytes=1 << 20)
            problem = got.error if got.value is None else _example_problem(
                got.value, self.settings.max_feature_abs)
            if problem is None:
                example = got.value
                before = self.window.refused_future
                if self.window.add(example, now=now):
                    outcome = "kept"
                    self.new_frauds += bool(example["is_fraud"])
                elif self.window.refused_future > before:
                    outcome = "future"
                    problem = (f"event_ts {example['event_ts']!r} is more than "
                               f"{self.window.max_future_skew_s:.0f} s past the clock "
                               "(FRAUDSTREAM_MAX_FUTURE_SKEW_S)")
                else:
                    outcome = "ignored"
        except Exception as exc:  # no example may stop the trainer: count it, log it, go on
            outcome, problem, exc_info = "invalid", f"{type(exc).__name__}: {exc}", exc
        self.metrics.examples.labels(outcome).inc()
        if problem is not None:
            self.refusals.refused(self.settings.topics.training_examples, outcome,
                                  f"skipping a training example at {where or 'unknown'}: {problem}",
                                  exc_info=exc_info)
        return outcome

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

    def _window_gauges(self) -> None:
        self.metrics.window_rows.set(len(self.window))
        self.metrics.window_frauds.set(self.window.n_frauds)
        self.metrics.new_frauds.set(self.new_frauds)

    # -- the main loop -------------------------------------------------------------------
    def run(self, once: bool = False) -> int:
        """Run until stopped (``once``: rebuild, one cycle, return its exit status)."""
        s = self.settings
        removed = self.registry.clean_staging()
        if removed:
            log.warning("removed %d unfinished version(s) from the registry's staging area", removed)
        self.reconcile_announcements()
        # The ledger's gauges from the registry: a restarted trainer shows them before a cycle.
        state = self.ledger_state()
        self._ledger_gauges({"summary": _strict(summarize(state["entries"], self.ledger_config.confidence))},
                            plan(state, self.ledger_config)["on"])
        self.rebuild_window()
        if once:
            self.start_cycle("request")
            self.cycle.thread.join()
            return 0 if self.cycle.outcome != "failed" else 1
        control = tail_consumer(s, s.topics.control, "fraudstream-trainer-control")
        last_start = time.time()
        next_due = self.schedule.next_due(last_start, last_start)
        log.info("trainer ready: cycles %s, or after %d new frauds, or on `fraudstream retrain`; "
                 "next scheduled at %s", self.schedule.describe(), s.trainer_new_frauds_trigger,
                 time.strftime("%H:%M:%S", time.localtime(next_due)))
        requested: list[str] = []  # the first few ids since the last cycle, for the log
        n_requested = 0
        while not self.stop.is_set():
            self._consume(self._examples, 200)
            for records in control.poll(timeout_ms=0).values():
                for r in records:
                    request = self.on_control(r.value)
                    if request is None:
                        continue
                    n_requested += 1
                    if len(requested) < _REQUESTS_NAMED:
                        requested.append(printable(request["request_id"], 64))
                        log.info("retrain requested (%s): %s", requested[-1],
                                 printable(request.get("reason", ""), 200))
            self._window_gauges()
            self._champion_gauges()
            now = time.time()
            if self.cycle is not None and self.cycle.thread.is_alive():
                if now - self.cycle.started > s.trainer_cycle_timeout_s + _HANG_GRACE_S:
                    log.error("the cycle has run %.0f s, past its limit of %.0f s: it is hung; "
                              "exiting so the supervisor restarts the trainer",
                              now - self.cycle.started, s.trainer_cycle_timeout_s)
                    self.metrics.cycles.labels("failed", "none").inc()
                    return 3
                continue
            trigger = ("request" if n_requested else
                       "new_frauds" if self.new_frauds >= s.trainer_new_frauds_trigger else
                       "schedule" if now >= next_due else None)
            if trigger is None:
                continue
            if n_requested:
                more = (f" and {n_requested - len(requested)} more"
                        if n_requested > len(requested) else "")
                log.info("starting the cycle for request(s) %s%s", ", ".join(requested), more)
            requested.clear()
            n_requested = 0
            last_start = now
            next_due = self.schedule.next_due(last_start, now)
            self.start_cycle(trigger)
        log.info("trainer stopping")
        return 0

    def start_cycle(self, trigger: str) -> None:
        """Snapshot the window (in this thread: it owns the window) and run a cycle thread."""
        self.metrics.triggers.labels(trigger).inc()
        t0 = time.perf_counter()
        data = self.window.snapshot()
        log.info("cycle %d (%s) takes the window: %d rows, %d frauds, digest %s",
                 self.cycles_done + 1, trigger, len(data), int(data.y.sum()), self.window.digest())
        self.metrics.phase_duration.labels("window").observe(time.perf_counter() - t0)
        self.new_frauds = 0
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
            champion = None
            if champion_version:
                try:
                    champion = self.registry.load_batch_model(champion_version, self.schema)
                except ArtifactError as exc:
                    log.error("the champion %s fails verification (%s); comparing against the "
                              "online learner instead", champion_version, exc)
            effect = self.online_synthetic_effect(data)
            state = self.ledger_state()
            synthesis = plan(state, self.ledger_config)
            log.info("augmentation ledger: %s", synthesis["reason"])
            result = run_cycle(
                data, champion, self.config,
                synthesis_off=None if synthesis["on"] else synthesis["reason"],
                deadline=Deadline(self.settings.trainer_cycle_timeout_s), progress=self._progress,
                on_phase=lambda phase, seconds: m.phase_duration.labels(phase).observe(seconds))
            synthetic = result.synthetic_verdict
            ledger = self.next_ledger(state, synthesis, result.report)
            self._quality_gauges(result.report)
            self._ledger_gauges(ledger, synthesis["on"])
            t_pub = time.perf_counter()
            outcome = self.publish(result, cycle, effect, ledger)
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
        self._champion_gauges()
        log.info("cycle %d finished in %.1f s: %s", n, seconds, outcome)

    def _progress(self, message: str) -> None:
        # Fit steps come every few hundred optimiser steps: log one each 10 s at most.
        if "fit step" in message:
            now = time.monotonic()
            if now - self._last_fit_note < 10:
                return
            self._last_fit_note = now
        log.info("%s", message)

    def publish(self, result, cycle: _Cycle, effect: dict[str, Any] | None,
                ledger: dict[str, Any] | None = None) -> str:
        """Write the challenger to the registry; promote and announce when it won."""
        s = self.settings
        report = {**result.report, "online_synthetic_effect": effect}
        n_publish = 0
        if s.trainer_publish_synthetic and result.synthetic is not None:
            n_publish = min(s.trainer_synthetic_publish_cap, len(result.synthetic))
        files: dict[str, Any] = {MODEL_FILE: result.challenger.to_bytes()}
        with tempfile.TemporaryDirectory(prefix="fraudstream-cycle-") as tmp:
            if result.diffusion is not None:
                path = Path(tmp) / DIFFUSION_FILE
                result.diffusion.save(path)
                files[DIFFUSION_FILE] = path
            online = self._newest_online_checkpoint()
            if online is not None:
                files[ONLINE_FILE] = online
            metadata = {
                "status": "champion" if result.promote else "challenger",
                "feature_names": self.names,
                "feature_schema": self.schema,
                "trigger": cycle.trigger,
                "window": result.report["split"],
                "report": report,
                "code_version": code_version(),
                "synthetic_published": {"n": n_publish,
                                        "at_event_ts": report["split"]["window_last_ts"]},
                "ledger": ledger,
            }
            info = self.registry.publish(files, metadata)
        log.info("cycle report of %s:\n%s", info.version, format_report(report))
        if effect:
            log.info("online learner and published synthetic frauds: %s", effect["summary"])
        kafka = producer(s)
        try:
            if result.promote:
                self.registry.set_champion(info.version, result.reason, self.schema)
                announce(s, {**self.registry.announcement(info.version), "action": "promote",
                             "reason": result.reason}, kafka)
                log.info("promoted %s and announced it on %s", info.version, s.topics.model_updates)
            elif s.trainer_shadow_challengers:
                announce(s, {**self.registry.announcement(info.version, role="shadow"),
                             "action": "shadow", "reason": "challenger not promoted"}, kafka)
                log.info("kept the champion; %s deployed in shadow", info.version)
            else:
                log.info("kept the champion; %s stays in the registry as a challenger", info.version)
            if n_publish:
                sent = publish_synthetic(s, kafka, info.version, self.names, self.schema,
                                         result.synthetic[:n_publish])
                self.metrics.synthetic_published.inc(sent)
                log.info("published %d synthetic frauds for the online learners", sent)
        finally:
            kafka.close(timeout=5)
        if result.synthetic is not None or result.synthetic_verdict != "none":
            self.metrics.synthetic_rows.inc(result.report["synthetic"]["n_requested"])
        removed = self.registry.prune()
        if removed:
            log.info("pruned old versions: %s", ", ".join(removed))
        return "promoted" if result.promote else "kept_champion"

    def ledger_state(self) -> dict[str, Any]:
        """The augmentation ledger as the newest readable version left it (empty if none)."""
        for version in reversed(self.registry.versions()):
            try:
                return state_from(self.registry.info(version).metadata)
            except ArtifactError:
                continue
        return state_from(None)

    def next_ledger(self, state: dict[str, Any], synthesis: dict[str, Any],
                    report: dict[str, Any]) -> dict[str, Any]:
        """The ledger after this cycle, as stored in its version's metadata."""
        entry = report["comparisons"]["synthetic"]
        if entry is not None:
            entry = {**entry, "at": report["split"]["window_last_ts"]}
        after = advance(state, entry, synthesis["on"], self.ledger_config)
        summary = summarize(after["entries"], self.ledger_config.confidence)
        ledger = {"state": after, "summary": summary, "measured": entry is not None,
                  "synthesis": {"on": synthesis["on"], "reason": synthesis["reason"]}}
        if summary["n"]:
            log.info("augmentation ledger after this cycle: AP gain %+.4f [%.0f%% interval %+.4f, "
                     "%+.4f] over %d measured cycle(s)%s", summary["gain"],
                     100 * self.ledger_config.confidence, summary["low"], summary["high"],
                     summary["n"], "" if entry is not None else " (this cycle measured nothing)")
        return _strict(ledger)

    def online_synthetic_effect(self, data: WindowData) -> dict[str, Any] | None:
        """Online learner's prequential AP before vs after the last synthetic publication.

        Equal event-time spans on each side of the publication (the window's newest event
        then); the scores are those the learner gave at scoring time.
        """
        last = None
        for version in reversed(self.registry.versions()):
            try:
                pub = self.registry.info(version).metadata.get("synthetic_published") or {}
            except ArtifactError:
                continue
            if pub.get("n"):
                last = (version, pub)
                break
        if last is None:
            return None
        version, pub = last
        at = float(pub["at_event_ts"])
        span = float(data.ts.max()) - at if len(data) else 0.0
        known = ~np.isnan(data.score_online)
        after = known & (data.ts > at)
        before = known & (data.ts <= at) & (data.ts > at - span)
        sides = {"before": _ap(data, before), "after": _ap(data, after)}
        raised = None
        if sides["before"]["average_precision"] is not None and sides["after"]["average_precision"] is not None:
            raised = sides["after"]["average_precision"] > sides["before"]["average_precision"]
        summary = (f"{pub['n']} published by {version}; prequential AP before "
                   f"{_fmt(sides['before']['average_precision'])} ({sides['before']['n']} tx), after "
                   f"{_fmt(sides['after']['average_precision'])} ({sides['after']['n']} tx): "
                   + ("raised" if raised else "not raised" if raised is False else "not enough data yet"))
        return {"published_by": version, "n_published": pub["n"], "at_event_ts": at,
                "span_days": span / _DAY_S, **sides, "raised": raised, "summary": summary}

    def _newest_online_checkpoint(self) -> Path | None:
        folder = Path(self.settings.model_registry) / "online"
        found = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return found[-1] if found else None

    # -- announcements and gauges ----------------------------------------------------------
    def reconcile_announcements(self) -> None:
        """Re-announce the registry's champion if the topic's newest valid champion record does
        not name it with its artifact's sha256 (a trainer killed between promoting and
        announcing, a fresh topic, or garbage after the last announcement). Never raises: a
        trainer that cannot reconcile still trains."""
        try:
            champion = self.registry.champion()
            if not champion:
                return
            payload = self.registry.announcement(champion)
        except ArtifactError as exc:
            log.error("the registry's champion cannot be announced: %s", exc)
            return
        try:
            latest, _ = latest_announcements(self.settings, on_refused=self._refused_announcement)
        except Exception as exc:  # the broker, not a record: the next promotion announces
            log.error("could not read %s to reconcile it with the registry (%s)",
                      self.settings.topics.model_updates, printable(exc))
            return
        announced = latest.get("champion") or {}
        if (announced.get("version"), announced.get("sha256")) == (champion, payload["sha256"]):
            return
        try:
            announce(self.settings, {**payload, "action": "reannounce",
                                     "reason": "model-updates did not name the registry's champion"})
        except Exception as exc:
            log.error("could not re-announce the registry's champion %s: %s", champion,
                      printable(exc))
            return
        log.warning("re-announced the registry's champion %s", champion)

    def _refused_announcement(self, ann: Announcement) -> None:
        self.metrics.refused.labels("model-updates", ann.refused or "malformed").inc()
        self.refusals.refused(self.settings.topics.model_updates, ann.refused or "malformed",
                              f"ignoring a model-updates record at offset {ann.offset}: {ann.error}")

    def _champion_gauges(self) -> None:
        m = self.metrics
        try:
            version = self.registry.champion()
            created = self.registry.info(version).created_at if version else 0.0
        except ArtifactError:
            version, created = None, 0.0
        m.champion.info({"version": version or "none"})
        m.champion_created.set(created)
        m.champion_age.set(time.time() - created if created else 0.0)

    def _ledger_gauges(self, ledger: dict[str, Any], on: bool) -> None:
        m, summary = self.metrics, ledger["summary"]
        for bound, key in (("estimate", "gain"), ("low", "low"), ("high", "high")):
            value = summary.get(key)
            m.ledger_gain.labels(bound).set(math.nan if value is None else value)
        m.ledger_cycles.set(summary["n"])
        m.synthesis_enabled.set(1 if on else 0)

    def _quality_gauges(self, report: dict[str, Any]) -> None:
        m = self.metrics
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
        m.synthetic_ratio.set(report["synthetic"].get("ratio") or 0.0)
        for model, values in report["holdout"].items():
            for metric in ("average_precision", "card_precision_at_k", "recall_at_budget"):
                value = values.get(metric)
                m.holdout.labels(model, metric).set(math.nan if value is None else value)


def _strict(obj: Any) -> Any:
    """NaN becomes None: the registry's metadata is read by tools that want strict JSON."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _example_problem(example: dict[str, Any], max_abs: float) -> str | None:
    """What makes a contract-valid training example unfit for the window, or None."""
    for field in ("event_ts", "label_ts"):
        value = example[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value < 1e11 or not math.isfinite(value):
            return f"{field} {printable(repr(value), 40)} is not epoch seconds"
    for field in ("features", "scores"):
        found = feature_problem(example.get(field) or {}, None, max_abs)
        if found is not None:
            return f"{field}: {found[1]}"
    return None


def _ap(data: WindowData, mask: np.ndarray) -> dict[str, Any]:
    y, score = data.y[mask], data.score_online[mask]
    ap = float(average_precision_score(y, score)) if 0 < y.sum() < len(y) else None
    return {"average_precision": ap, "n": int(mask.sum()), "frauds": int(y.sum())}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def code_version() -> str:
    """The installed fraudstream version, plus the git commit when run from a checkout."""
    try:
        version = importlib_metadata.version("fraudstream")
    except importlib_metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        if commit.returncode == 0:
            version += "+g" + commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version


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
    trainer._champion_gauges()
    return trainer.run(once=once)
