"""``fraudstream soak``: run the service for N minutes at a fixed rate and watch what grows.

A fresh local broker, one worker and the trainer; simulated transactions at ``--rate`` per
second with their labels (every one, frauds only, or none) interleaved in event time as a
label feed would deliver them. Every ``--every`` seconds it prints the worker's and the
trainer's resident memory, the worker's consumer lag, the label join's state sizes and the
latency quantiles of that interval (from the worker's own histogram); at the end the first
and last sample side by side. Memory or state that keeps rising at a steady rate is a leak
or an unbounded state.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import simulator as sim
from .bench_support import fresh_topics, own_broker, say, scratch_dir
from .config import Settings
from .processes import TrainerProcess, WorkerProcess, quantile_between, settings_env
from .topics import create_topics

__all__ = ["run_soak"]


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a process from /proc (Linux), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _sample(worker: WorkerProcess, trainer: TrainerProcess, start: float, produced: dict,
            previous: dict[float, float]) -> tuple[dict[str, Any], dict[float, float]]:
    buckets = worker.buckets()
    p50, p99 = quantile_between(previous, buckets, 0.5), quantile_between(previous, buckets, 0.99)
    sample = {
        "elapsed_s": round(time.monotonic() - start),
        "produced_tx": produced.get("transactions", 0),
        "produced_labels": produced.get("labels", 0),
        "scored": worker.metric("fraudstream_transactions_scored_total"),
        "lag": worker.metric("fraudstream_consumer_lag"),
        "snapshots_pending": worker.metric("fraudstream_snapshots_pending"),
        "labels_waiting": worker.metric("fraudstream_labels_waiting"),
        "worker_rss_mb": _rss_mb(worker.proc.pid),
        "trainer_rss_mb": _rss_mb(trainer.proc.pid),
        "latency_p50_ms": None if p50 is None else p50 * 1000,
        "latency_p99_ms": None if p99 is None else p99 * 1000,
    }
    return sample, buckets


def _line(s: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = "{:,.0f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    return (f"{s['elapsed_s']:>6d}s  produced {f(s['produced_tx'])}  scored {f(s['scored'])}  "
            f"lag {f(s['lag'])}  pending {f(s['snapshots_pending'])}  "
            f"waiting {f(s['labels_waiting'])}  worker {f(s['worker_rss_mb'])} MiB  "
            f"trainer {f(s['trainer_rss_mb'])} MiB  latency p50<= {f(s['latency_p50_ms'])} ms "
            f"p99<= {f(s['latency_p99_ms'])} ms")


def run_soak(settings: Settings, *, minutes: float = 30.0, rate: float = 500.0,
             labels: str = "all", every_s: float = 60.0, seed: int = 0) -> dict[str, Any]:
    """Run the service under a steady load; return the samples (start, end, every interval)."""
    with scratch_dir("fraudstream-soak-") as workdir:
        broker, settings = own_broker(settings, workdir, "soak")
        tag = uuid.uuid4().hex[:6]
        topics = fresh_topics(f"soak-{tag}")
        settings = settings.model_copy(update={
            "topics": topics, "model_registry": workdir / "registry", "app_id": f"soak-{tag}"})
        n_tx = int(rate * minutes * 60)
        # The simulator makes ~1.9 transactions per customer per day; size the population so the
        # stream spans three weeks of event time (labels arrive 7 simulated days after their tx).
        customers = max(50, n_tx // (2 * 21))
        days = 23
        say(f"simulating {n_tx:,} transactions ({customers:,} customers, {days} days) ...")
        df = sim.simulate(sim.SimulationConfig(n_customers=customers, n_terminals=2 * customers,
                                               n_days=days, seed=seed)).head(n_tx)
        mode = "all" if labels == "none" else labels
        events = (e for e in sim.events(df, 7.0, labels=mode)
                  if labels != "none" or e[0] == "transaction")
        create_topics(settings)
        env = settings_env(settings, app_id=settings.app_id, label_mode=mode,
                           trainer_interval_s=300)
        worker = WorkerProcess(env, workdir / "worker.log", "soak-worker")
        trainer = TrainerProcess(env, workdir / "trainer.log")
        produced: dict[str, int] = {}
        failure: list[BaseException] = []
        stop = threading.Event()

        def until_stopped():
            for event in events:
                if stop.is_set():
                    return
                yield event

        def produce() -> None:
            try:
                sim.produce_to_kafka(until_stopped(), settings.bootstrap_servers,
                                     {"transaction": topics.transactions, "label": topics.labels},
                                     rate=rate, progress=produced.update,
                                     security_kwargs=settings.kafka_python_security())
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        samples: list[dict[str, Any]] = []
        producer = threading.Thread(target=produce, name="soak-producer", daemon=True)
        try:
            start = time.monotonic()
            producer.start()
            say(f"soaking for {minutes:g} min at {rate:,.0f} tx/s (labels: {labels}); worker log "
                f"{worker.log_path}")
            previous: dict[float, float] = {}
            deadline = start + minutes * 60
            while time.monotonic() < deadline and not failure:
                time.sleep(min(every_s, max(0.0, deadline - time.monotonic())))
                sample, previous = _sample(worker, trainer, start, produced, previous)
                samples.append(sample)
                say(_line(sample))
                for proc, name in ((worker, "worker"), (trainer, "trainer")):
                    if proc.proc.poll() is not None:
                        raise RuntimeError(f"the {name} exited ({proc.proc.returncode}); "
                                           f"see {proc.log_path}")
            if failure:
                raise RuntimeError(f"the producer failed: {failure[0]!r}")
        finally:
            stop.set()  # the producer flushes and closes while the broker is still up
            producer.join(timeout=30)
            worker.stop()
            trainer.stop()
            broker.stop()
        result = {"minutes": minutes, "rate_tps": rate, "labels": labels, "samples": samples,
                  "start": samples[0] if samples else None, "end": samples[-1] if samples else None}
        if samples:
            say("first and last sample:\n  " + _line(samples[0]) + "\n  " + _line(samples[-1]))
        return result


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
