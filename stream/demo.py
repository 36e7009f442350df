"""``fraudstream demo``: the whole scoring path end to end on the embedded defaults.

A fresh local broker, the contract's topics, one worker, and the simulator streaming several
simulated weeks with delayed labels (plus a handful of malformed messages, to show the DLQ).
A one-screen summary refreshes while it runs; a closing summary follows.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from . import simulator as sim
from .config import Settings
from .kafka_local import LocalBroker, free_port, port_free
from .processes import WorkerProcess, settings_env
from .topics import create_topics

__all__ = ["run_demo", "histogram_quantile"]

_BAD_MESSAGES = [
    (b"c-demo", b"{this is not json"),
    (b"c-demo", b'{"tx_id":"bad-1","ts":"2026-01-01T00:00:00Z","card_id":"c-demo","terminal_id":"t","amount":-5}'),
    (b"c-demo", b'{"tx_id":"bad-2","ts":"soon","card_id":"c-demo","terminal_id":"t","amount":5}'),
    (b"c-demo", b'{"tx_id":"bad-3","ts":1767225600,"card_id":"c-demo","terminal_id":"t","amount":NaN}'),
]


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style quantile from cumulative ``(upper_bound, count)`` buckets."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


class _Screen:
    """Redraws in place on a terminal; prints plain lines when piped (CI, logs)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._lines = 0

    def show(self, lines: list[str]) -> None:
        if self.tty and self._lines:
            sys.stdout.write(f"\x1b[{self._lines}F\x1b[J")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        self._lines = len(lines)


def _snapshot(worker: WorkerProcess) -> dict[str, float]:
    fams = worker.scrape()

    def total(name: str, **labels: str) -> float:
        return sum(v for n, lab, v in fams if n == name and all(lab.get(k) == x for k, x in labels.items()))

    buckets = [(float(lab["le"]), v) for n, lab, v in fams
               if n == "fraudstream_end_to_end_latency_seconds_bucket"]
    return {
        "in": total("fraudstream_messages_in_total", topic="transactions"),
        "scored": total("fraudstream_transactions_scored_total"),
        "dlq": total("fraudstream_dead_letters_total"),
        "labels": total("fraudstream_labels_total"),
        "learned": total("fraudstream_online_learned_total"),
        "ap": total("fraudstream_online_prequential_average_precision"),
        "recall": total("fraudstream_online_prequential_recall_at_review"),
        "base": total("fraudstream_online_prequential_fraud_rate"),
        "approve": total("fraudstream_decisions_total", decision="approve"),
        "review": total("fraudstream_decisions_total", decision="review"),
        "decline": total("fraudstream_decisions_total", decision="decline"),
        "p50": histogram_quantile(buckets, 0.5) * 1000,
        "p99": histogram_quantile(buckets, 0.99) * 1000,
    }


def _screen_lines(s: dict[str, float], rate: float, produced: dict, elapsed: float,
                  minutes: float, metrics_url: str) -> list[str]:
    return [
        f"fraudstream demo  {elapsed:5.0f}s / {minutes * 60:.0f}s    metrics: {metrics_url}",
        f"  produced      {produced.get('transactions', 0):>10,} tx  {produced.get('labels', 0):>10,} labels",
        f"  scored        {s['scored']:>10,.0f} tx   rate {rate:8,.0f} tx/s",
        f"  latency       p50 {s['p50']:7.1f} ms   p99 {s['p99']:7.1f} ms  (arrival in Kafka -> score)",
        f"  dead letters  {s['dlq']:>10,.0f}",
        f"  labels        {s['labels']:>10,.0f} joined/learned {s['learned']:,.0f}",
        f"  online model  prequential AP {s['ap']:.3f}  recall@review {s['recall']:.3f}  "
        f"fraud rate {s['base']:.4f}",
        f"  decisions     approve {s['approve']:,.0f}  review {s['review']:,.0f}  decline {s['decline']:,.0f}",
    ]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally blocks stop the worker and the broker


def run_demo(settings: Settings, minutes: float = 3.0, days: int = 35, customers: int = 1000,
             keep: bool = False) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = Path(str(settings.kafka_data_dir) + "-demo")
    shutil.rmtree(data_dir, ignore_errors=True)
    port = settings.kafka_port if port_free(settings.kafka_port) else free_port()
    broker = LocalBroker(data_dir, settings.kafka_home, port=port)
    print(f"starting a fresh local Kafka broker on 127.0.0.1:{port} ...", flush=True)
    status = broker.start(progress=print)
    registry = data_dir / "registry"
    demo = settings.model_copy(update={"broker_url": f"kafka://{status.bootstrap}",
                                       "model_registry": registry, "app_id": "fraudstream-demo"})
    for name, state in create_topics(demo).items():
        print(f"  topic {name:28s} {state}")
    env = settings_env(demo, app_id=demo.app_id, checkpoint_every_s=10)
    metrics_port = settings.metrics_port if port_free(settings.metrics_port) else free_port()
    worker = WorkerProcess(env, data_dir / "worker.log", "demo-worker", metrics_port=metrics_port)
    metrics_url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    print(f"worker started (log {worker.log_path}); metrics at {metrics_url}", flush=True)

    df = sim.simulate(sim.SimulationConfig.scaled(customers, n_days=days, seed=settings.seed,
                                                  label_delay_days=settings.label_delay_days))
    print(sim.summary(df), flush=True)
    span = float(df["ts"].max() - df["ts"].min()) + settings.label_delay_days * 86400
    speed = span / (minutes * 60 * 0.9)  # leave the last tenth for the worker to catch up
    produced: dict[str, int] = {}
    topics = {"transaction": demo.topics.transactions, "label": demo.topics.labels}

    def produce() -> None:
        from kafka import KafkaProducer

        bad = KafkaProducer(bootstrap_servers=demo.bootstrap_servers)
        for key, value in _BAD_MESSAGES:
            bad.send(demo.topics.transactions, key=key, value=value)
        bad.flush()
        bad.close()
        sim.produce_to_kafka(sim.events(df, settings.label_delay_days), demo.bootstrap_servers,
                             topics, speed=speed, progress=produced.update)

    print(f"streaming {len(df):,} transactions over {days} simulated days at "
          f"{speed:,.0f}x real time ({minutes:g} min) ...\n", flush=True)
    producer = threading.Thread(target=produce, daemon=True, name="simulator")
    started = time.monotonic()
    producer.start()
    screen = _Screen()
    last, last_t, rate = 0.0, started, 0.0
    snap: dict[str, float] = {}
    try:
        while True:
            time.sleep(2.0)
            now = time.monotonic()
            if worker.proc.poll() is not None:
                print("the worker exited unexpectedly:\n" + worker.log_tail(), file=sys.stderr)
                return 1
            try:
                snap = _snapshot(worker)
            except OSError:
                continue  # endpoint not up yet
            rate = (snap["scored"] - last) / (now - last_t)
            last, last_t = snap["scored"], now
            screen.show(_screen_lines(snap, rate, produced, now - started, minutes, metrics_url))
            done = not producer.is_alive() and snap["scored"] >= len(df)
            if done or now - started > minutes * 60 + 120:
                break
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        worker.stop()
        if not keep:
            broker.stop()
    elapsed = time.monotonic() - started
    print("\n== demo summary ==")
    print(f"transactions produced {len(df):,}; scored {snap.get('scored', 0):,.0f} in {elapsed:.0f}s; "
          f"dead letters {snap.get('dlq', 0):,.0f} (of {len(_BAD_MESSAGES)} malformed sent)")
    print(f"end-to-end latency p50 {snap.get('p50', math.nan):.1f} ms, p99 {snap.get('p99', math.nan):.1f} ms")
    print(f"online learner: prequential average precision {snap.get('ap', math.nan):.3f} over the "
          f"last {settings.prequential_window:,} labelled transactions, fraud base rate "
          f"{snap.get('base', math.nan):.4f} (AP of a random scorer = base rate)")
    print(f"decisions: approve {snap.get('approve', 0):,.0f}, review {snap.get('review', 0):,.0f}, "
          f"decline {snap.get('decline', 0):,.0f}")
    if keep:
        print(f"broker still running at {status.bootstrap}: `fraudstream kafka stop "
              f"--data-dir {data_dir}` stops it")
    else:
        print("broker stopped; worker log and checkpoints in", data_dir)
    return 0
