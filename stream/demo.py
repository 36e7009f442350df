"""``fraudstream demo``: the whole service end to end on the embedded defaults.

A fresh local broker, the contract's topics, one worker, the background trainer on a short
interval, and the simulator streaming several simulated weeks with delayed labels (plus a
handful of malformed messages, to show the DLQ). A one-screen summary refreshes while it
runs: scoring, labels, the online learner, and the trainer's cycles with the model version
the worker scores with; a closing summary lists the registry's versions side by side.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from ..models.days import DAY_S
from ..models.formats import fmt_number
from . import simulator as sim
from .config import Settings
from .bench_support import wait_metric
from .kafka_local import LocalBroker, free_port, port_free
from .processes import TrainerProcess, WorkerProcess, settings_env
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


_TRAINER_GAUGES = {"fraudstream_trainer_window_rows": "rows",
                   "fraudstream_trainer_window_frauds": "frauds",
                   "fraudstream_trainer_cycle_running": "running"}


def _trainer_snapshot(trainer: TrainerProcess, worker: WorkerProcess) -> dict[str, object]:
    out: dict[str, object] = {"version": "?", "champion": "none"}
    try:
        for name, labels, value in worker.scrape():
            if name == "fraudstream_model_info":
                out["version"] = labels.get("decision_model", "?")
            if name == "fraudstream_model_swaps_total":
                out[f"swap_{labels['outcome']}"] = out.get(f"swap_{labels['outcome']}", 0) + value
        for name, labels, value in trainer.scrape():
            if name == "fraudstream_trainer_cycles_total":
                key = f"cycles_{labels['outcome']}"
                out[key] = out.get(key, 0) + value
            elif name == "fraudstream_trainer_champion_info":
                out["champion"] = labels.get("version", "none")
            elif name in _TRAINER_GAUGES:
                out[_TRAINER_GAUGES[name]] = value
    except OSError:
        pass
    return out


def _trainer_lines(t: dict[str, object], last_event: str) -> list[str]:
    c = lambda k: int(t.get(f"cycles_{k}", 0))  # noqa: E731
    return [
        f"  trainer       cycles promoted {c('promoted')}  kept champion {c('kept_champion')}  "
        f"skipped {c('skipped')}  failed {c('failed')}  {'(a cycle is running)' if t.get('running') else ''}",
        f"                window {int(t.get('rows', 0) or 0):,} rows / {int(t.get('frauds', 0) or 0):,} "
        f"frauds   champion {t.get('champion')}",
        f"  worker model  scores with {t.get('version')}   swaps {int(t.get('swap_loaded', 0))}  "
        f"refused {int(t.get('swap_refused', 0))}",
        f"  last cycle    {last_event}",
    ]


def _last_cycle_line(log_path: Path) -> str:
    """The trainer's latest decision, from its log (what a person would tail)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "-"
    keys = ("evaluate:", "skipped:", "failed", "promoted v", "kept the champion")
    for line in reversed(lines):
        if any(k in line for k in keys):
            return line.split(": ", 1)[-1][:110]
    return "waiting for the first cycle"


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


# The demo compresses weeks into minutes: a short interval, a holdout of a few simulated
# days and a one-day gap, so a refresh happens while a person watches.
_DEMO_TRAINER = dict(trainer_interval_s=40, trainer_holdout_days=5, trainer_gap_days=1,
                     trainer_min_frauds=30, trainer_new_frauds_trigger=100_000,
                     trainer_publish_synthetic="true")


def demo_settings(settings: Settings, data_dir: Path, bootstrap: str) -> Settings:
    """The demo's settings: everything it writes (registry, worker state) under ``data_dir``.

    The demo starts a fresh broker in a wiped ``data_dir`` each time; worker state kept
    elsewhere would hold changelog offsets the new broker never had, and faust refuses to
    start on it (ConsistencyError): a second ``make demo`` would fail.
    """
    return settings.model_copy(update={"broker_url": f"kafka://{bootstrap}",
                                       "model_registry": data_dir / "registry",
                                       "state_dir": data_dir / "state",
                                       "app_id": "fraudstream-demo"})


def _send_malformed(settings: Settings) -> None:
    from kafka import KafkaProducer

    bad = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for key, value in _BAD_MESSAGES:
        bad.send(settings.topics.transactions, key=key, value=value)
    bad.flush()
    bad.close()


def run_demo(settings: Settings, minutes: float = 4.0, days: int = 35, customers: int = 1000,
             mix: str = "handbook", keep: bool = False) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    data_dir = Path(str(settings.kafka_data_dir) + "-demo")
    shutil.rmtree(data_dir, ignore_errors=True)
    port = settings.kafka_port if port_free(settings.kafka_port) else free_port()
    broker = LocalBroker(data_dir, settings.kafka_home, port=port)
    print(f"starting a fresh local Kafka broker on 127.0.0.1:{port} ...", flush=True)
    status = broker.start(progress=print)
    demo = demo_settings(settings, data_dir, status.bootstrap)
    registry = demo.model_registry
    for name, state in create_topics(demo).items():
        print(f"  topic {name:28s} {state}")
    env = settings_env(demo, app_id=demo.app_id, checkpoint_every_s=10)
    metrics_port = settings.metrics_port if port_free(settings.metrics_port) else free_port()
    worker = WorkerProcess(env, data_dir / "worker.log", "demo-worker", metrics_port=metrics_port)
    metrics_url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    print(f"worker started (log {worker.log_path}); metrics at {metrics_url}, its label "
          f"process's at http://127.0.0.1:{worker.extra_ports[0]}/metrics", flush=True)
    trainer_port = settings.trainer_metrics_port if port_free(settings.trainer_metrics_port) else free_port()
    trainer = TrainerProcess(settings_env(demo, app_id=demo.app_id, **_DEMO_TRAINER),
                             data_dir / "trainer.log", metrics_port=trainer_port)
    print(f"trainer started (log {trainer.log_path}, a cycle every {_DEMO_TRAINER['trainer_interval_s']} s); "
          f"metrics at http://127.0.0.1:{trainer.metrics_port}/metrics", flush=True)

    df = sim.simulate(sim.SimulationConfig.scaled(customers, mix, n_days=days, seed=settings.seed,
                                                  label_delay_days=settings.label_delay_days))
    print(sim.summary(df), flush=True)
    span = float(df["ts"].max() - df["ts"].min()) + settings.label_delay_days * DAY_S
    speed = span / (minutes * 60 * 0.9)  # leave the last tenth for the worker to catch up
    produced: dict[str, int] = {}
    topics = {"transaction": demo.topics.transactions, "label": demo.topics.labels}

    def produce() -> None:
        sim.produce_to_kafka(sim.events(df, settings.label_delay_days), demo.bootstrap_servers,
                             topics, speed=speed, progress=produced.update)

    # The malformed records go first, and the stream starts once the worker has dead-lettered
    # them: it is consuming, so the latency shown is scoring's, not the start-up's (the first
    # seconds of transactions otherwise waited for the worker to join its group).
    _send_malformed(demo)
    print("waiting for the worker to consume (it dead-letters the malformed records sent "
          "first) ...", flush=True)
    try:
        wait_metric(worker, "fraudstream_dead_letters_total", len(_BAD_MESSAGES), 180,
                    "the worker's dead letters of the malformed records")
    except RuntimeError as exc:
        print(f"{exc}\n{worker.log_tail()}", file=sys.stderr)
        worker.stop()
        trainer.stop()
        if not keep:
            broker.stop()
        return 1

    print(f"streaming {len(df):,} transactions over {days} simulated days at "
          f"{speed:,.0f}x real time ({minutes:g} min) ...\n", flush=True)
    producer = threading.Thread(target=produce, daemon=True, name="simulator")
    started = time.monotonic()
    producer.start()
    screen = _Screen()
    last, last_t, rate = 0.0, started, 0.0
    snap: dict[str, float] = {}
    tsnap: dict[str, object] = {}
    try:
        while True:
            time.sleep(2.0)
            now = time.monotonic()
            if worker.proc.poll() is not None:
                print("the worker exited unexpectedly:\n" + worker.log_tail(), file=sys.stderr)
                return 1
            if trainer.proc.poll() is not None:  # scoring goes on; say so once
                print("the trainer exited (scoring goes on):\n" + trainer.log_tail(), file=sys.stderr)
            try:
                snap = _snapshot(worker)
            except OSError:
                continue  # endpoint not up yet
            rate = (snap["scored"] - last) / (now - last_t)
            last, last_t = snap["scored"], now
            tsnap = _trainer_snapshot(trainer, worker)
            screen.show(_screen_lines(snap, rate, produced, now - started, minutes, metrics_url)
                        + _trainer_lines(tsnap, _last_cycle_line(trainer.log_path)))
            done = (not producer.is_alive() and snap["scored"] >= len(df)
                    and not tsnap.get("running") and tsnap.get("cycles_promoted", 0) + tsnap.get("cycles_kept_champion", 0) > 0)
            if done or now - started > minutes * 60 + 120:
                break
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        worker.stop()
        trainer.stop()
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
    print(f"trainer: cycles {', '.join(f'{k[7:]} {int(v)}' for k, v in tsnap.items() if k.startswith('cycles_') and v)}; "
          f"the worker scored with {tsnap.get('version', '?')} at the end "
          f"({int(tsnap.get('swap_loaded', 0))} model swap(s))")
    _print_registry(registry)
    if keep:
        print(f"broker still running at {status.bootstrap}: `fraudstream kafka stop "
              f"--data-dir {data_dir}` stops it")
    else:
        print("broker stopped; worker log and checkpoints in", data_dir)
    return 0


def _print_registry(root: Path) -> None:
    """Every version's holdout AP: champion vs challenger vs challenger without synthetic data."""
    from ..models.registry import ArtifactError, Registry
    from .registry_view import gain_interval, ledger_line

    registry = Registry(root)
    versions = registry.versions()
    if not versions:
        print("model registry: no version yet (cycles skipped or still running: see trainer.log)")
        return
    champion = registry.champion()
    newest = None
    print("model registry (holdout average precision; the value of augmentation is the "
          "challenger vs 'no synthetic' column):")
    for v in versions:
        try:
            meta = registry.info(v).metadata
        except ArtifactError:
            continue
        report = meta.get("report") or {}
        h = report.get("holdout") or {}
        ap = lambda k: (h.get(k) or {}).get("average_precision")  # noqa: E731
        gains = report.get("comparisons") or {}
        print(f"  {v}{' (champion)' if v == champion else '':<11} champion {fmt_number(ap('champion'))}  "
              f"challenger {fmt_number(ap('challenger'))}  "
              f"no synthetic {fmt_number(ap('challenger_no_synthetic'))}  "
              f"synthetic {(report.get('synthetic') or {}).get('verdict', '?')}\n"
              f"  {'':<37} gain over champion {gain_interval(gains.get('challenger_vs_champion'))} "
              f"({(report.get('decision') or {}).get('verdict', '?')}), "
              f"of synthetic rows {gain_interval(gains.get('synthetic'))}")
        newest = meta
    print("  " + ledger_line(newest))
