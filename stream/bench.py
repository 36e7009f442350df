"""``fraudstream bench``: what one worker process gives a user, against a real broker.

Two measurements, each on the pipeline and on its ceiling (a passthrough worker: the same
faust/aiokafka stack, one record out per transaction in, no decoding or scoring):

(a) **throughput**: a pre-loaded topic of simulated transactions, and with ``--labels all``
    (the default, as ``make demo`` runs) a label for every one of them in the labels topic
    (``fraud_only``: for the frauds; ``none``: no labels). The pipeline's rate runs from its
    first score to its last output (score or training example), so the label path is paid
    for; start-up and group join are not counted against either side. The rate to the last
    score alone (``pipeline_scoring_tps``, ``scoring_ratio``) is what scoring kept up with
    while the worker's label process (stream/app.py) learned beside it.
(b) **latency at steady offered loads** (500, 1,000 and 2,000 tx/s by default), transactions
    and their labels produced at the same rate by ``pace | kcat`` (stream/load.py: a few
    percent of one core, so the cores go to the worker and the broker), with Poisson arrivals
    by default, as from many independent terminals (``arrivals``; ``burst_10ms_p99`` says
    what the broker saw: ~30 transactions within 10 ms at 2,000 tx/s). ``arrivals="pv"``
    offers the load as ``pv -L`` does, in bursts of a tenth of a second's records (200 within
    10 ms at 2,000 tx/s), where the p99 is the time to score a burst. Before the measured
    loads each side gets ``warmup_s`` seconds at the first offered rate, not measured: the
    first seconds of load on a freshly started broker are slow whoever reads it (measured
    with a plain kafka-python consumer: worst 763 and 100 ms in the first second on two fresh
    brokers, 17-53 ms in later loads). The labels of a window's transactions follow them
    ``label_lag_s`` later.
    Latency is each score's broker timestamp minus its transaction's (both stamped on this
    machine's clock), and also read from the worker's own end-to-end histogram (bucket upper
    bounds). ``slowest_seconds`` names each load's three seconds with the highest p99: is the
    tail one episode or spread over the load?

The pipeline worker runs as configured (``FRAUDSTREAM_LABEL_PROCESS``: its label path in a
child process by default, ``inline`` in the scoring process); the result names it.

Both sides see the same load: the passthrough worker ignores the labels, but the broker
carries them. Each side's CPU is read from ``/proc`` (stream/cpu_meter.py): per transaction
in (a), with the throughput ratio it allows on the machine's cores (``ratio_cpu_bound``),
and the cores each process and the broker kept busy at every offered load in (b).
``core_speed_ms`` times a fixed pure-Python workload before and after the run
(stream/bench_support.py): the machines differ, and so does one machine from hour to hour.
Keys ``pipeline_tps``, ``passthrough_tps``, ``ratio``, ``offered_tps`` and ``latency_ms``
(the pipeline's at the highest offered load) keep their meaning.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from ..models.days import DAY_S
from . import simulator as sim
from .bench_report import table
from .bench_support import (
    core_speed_ms, count_records, fresh_topics, say, scratch_dir, wait_metric,
)
from .bench_support import own_broker as start_broker
from .config import Settings
from .contract import encode
from .cpu_meter import CpuMeter, CpuReading, busy_cores, per_transaction, ratio_bound
from .kafka_local import metadata_ok
from .load import Arrivals, LoadTools, PacedLoad
from .processes import LOOP_LAG, WorkerProcess, quantile_between, settings_env
from .topics import create_topics

__all__ = ["run_bench", "table", "LabelMode", "DEFAULT_RATES", "DEFAULT_LOAD_STREAMS",
           "DEFAULT_WARMUP_S"]

LabelMode = Literal["all", "fraud_only", "none"]
DEFAULT_RATES = (500.0, 1000.0, 2000.0)
#: Paced streams per topic in the latency runs (stream/load.py's PacedLoad): one. With
#: ``arrivals="pv"``, eight streams cut pv's bursts (p99 91 transactions per 10 ms at
#: 2,000 tx/s instead of 200) but cost 4.5 times the CPU of one (measured: 31 s against 7 s
#: in a run at 2,000 tx/s), about half a core taken from the worker on this 2-core machine.
DEFAULT_LOAD_STREAMS = 1
#: Seconds of load at the first offered rate before the measured ones, per side.
DEFAULT_WARMUP_S = 5.0
SIDES = ("passthrough", "pipeline")


def _wait_count(settings: Settings, topic: str, n: int, timeout: float,
                progress: Callable[[int], None]) -> int:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        got = count_records(settings, [topic])
        if got != last:
            progress(got)
            last = got
        if got >= n:
            return got
        time.sleep(1.0)
    return last


def _read_all(settings: Settings, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             **settings.kafka_python_security(),
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for msgs in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                out.extend(msgs)
        return out
    finally:
        consumer.close()


# -- the load -----------------------------------------------------------------------------
def _lines(df, labels: LabelMode, delay_days: float) -> tuple[list, list]:
    """``(transactions, labels)`` as kcat lines, labels in their transactions' order."""
    tx = [(str(r.card_id).encode(), encode("transactions", {
        "tx_id": r.tx_id, "ts": float(r.ts), "card_id": r.card_id, "terminal_id": r.terminal_id,
        "amount": float(r.amount)})) for r in df.itertuples()]
    if labels == "none":
        return tx, []
    rows = df[df["is_fraud"] == 1] if labels == "fraud_only" else df
    lab = [(str(r.card_id).encode(), encode("labels", {
        "tx_id": r.tx_id, "card_id": r.card_id, "is_fraud": bool(r.is_fraud),
        "ts": float(r.ts) + delay_days * DAY_S})) for r in rows.itertuples()]
    return tx, lab


def _produce(tools: LoadTools, settings: Settings, topic: str, lines: list, path: Path,
             rate: float | None = None, streams: int = 1,
             arrivals: Arrivals = "poisson") -> PacedLoad | None:
    if not lines:
        return None
    return PacedLoad(tools, settings, topic, lines, path, rate, streams, arrivals)


def _side_settings(base: Settings, side: str) -> Settings:
    """Same input topics, this side's own output topics and consumer group."""
    out = base.topics.model_copy(update={
        k: f"{v}-{side}" for k, v in base.topics.model_dump().items()
        if k not in ("transactions", "labels")})
    return base.model_copy(update={"topics": out,
                                   "state_dir": Path(base.state_dir) / side})


# -- (a) throughput -----------------------------------------------------------------------
def _throughput(base: Settings, tag: str, side: str, n_tx: int, n_labels: int,
                workdir: Path, timeout: float,
                broker_pid: int | None) -> tuple[float, float, dict | None]:
    """``(tx/s to the last output, tx/s to the last score, CPU a transaction)``: with labels
    the first pays for the label path too, the second is what scoring kept up with
    meanwhile; the third is :func:`~.cpu_meter.per_transaction`, from the first output seen
    to the end."""
    s = _side_settings(base, side)
    create_topics(s)
    worker = WorkerProcess(settings_env(s, as_configured=True, app_id=f"bench-{tag}-{side}",
                                        label_process=s.label_process),
                           workdir / f"{side}.log", f"bench-{side}", passthrough=side == "passthrough")
    meter = CpuMeter(worker.proc.pid, broker_pid)
    opening: list[tuple[int, CpuReading]] = []  # (outputs by then, the reading)

    def progress(c: int) -> None:
        say(f"  {side}: {c:,}/{n_tx:,} out")
        if c and not opening:  # start-up and the group join are not counted
            opening.append((c, meter.read(time.monotonic())))

    cpu = None
    try:
        got = _wait_count(s, s.topics.scores, n_tx, timeout, progress)
        if got < n_tx:
            raise RuntimeError(f"{side} produced {got} of {n_tx} records in {timeout:.0f}s; "
                               f"see {worker.log_path}")
        if side == "pipeline" and n_labels:
            wait_metric(worker, "fraudstream_messages_in_total", n_labels, timeout, "labels read",
                        {"topic": "labels"})
            # every label read has been joined and learned once the examples stop growing
            last = -1
            while (now := count_records(s, [s.topics.training_examples])) != last:
                last = now
                time.sleep(2.0)
        if opening:
            outputs, reading = opening[0]
            cpu = per_transaction(meter.read(time.monotonic()).minus(reading), n_tx - outputs)
    finally:
        worker.stop()
    out = _read_all(s, s.topics.scores)
    if side == "pipeline" and n_labels:
        out += _read_all(s, s.topics.training_examples)
    scored = [r.timestamp for r in out if r.topic == s.topics.scores]
    first = min(scored) / 1000.0
    last, last_score = max(r.timestamp for r in out) / 1000.0, max(scored) / 1000.0
    return (n_tx / (last - first) if last > first else float("nan"),
            n_tx / (last_score - first) if last_score > first else float("nan"), cpu)


# -- (b) latency at offered loads ---------------------------------------------------------
def _latency(base: Settings, tag: str, side: str, windows: list, tools: LoadTools,
             workdir: Path, label_lag_s: float, streams: int, arrivals: Arrivals,
             broker_pid: int | None) -> dict:
    """One worker, the offered loads one after the other; per load, its latency figures and
    the cores its processes and the broker kept busy meanwhile."""
    s = _side_settings(base, side)
    create_topics(s)
    worker = WorkerProcess(settings_env(s, as_configured=True,
                                        app_id=f"bench-{tag}-lat-{side}",
                                        label_process=s.label_process),
                           workdir / f"latency-{side}.log", f"bench-lat-{side}",
                           passthrough=side == "passthrough")
    t = base.topics
    sent = labels_sent = 0
    histograms = []
    meter = CpuMeter(worker.proc.pid, broker_pid)
    try:
        for rate, tx, lab, measured in windows:
            before = (worker.buckets(), worker.buckets(LOOP_LAG), meter.read(time.monotonic()))
            what = ("warm-up" if rate is None else f"{rate:,.0f} tx/s"
                    + ("" if measured else ", warm-up"))
            say(f"  {side}: offering {what}: {len(tx):,} transactions, {len(lab):,} labels")
            started = time.monotonic()
            producers = [_produce(tools, s, t.transactions, tx, workdir / f"tx-{side}.txt", rate,
                                  streams, arrivals)]
            if lab:
                time.sleep(label_lag_s if rate is not None else 0.0)
                producers.append(_produce(tools, s, t.labels, lab, workdir / f"lab-{side}.txt",
                                          rate, streams, arrivals))
            for p in producers:
                if p is not None:
                    p.wait(timeout=600)
            sent += len(tx)
            got = _wait_count(s, s.topics.scores, sent, 300, lambda c: None)
            if got < sent:
                raise RuntimeError(f"{side}: {got:,} of {sent:,} scored 300 s after the load; "
                                   f"see {worker.log_path}")
            labels_sent += len(lab)
            if side == "pipeline" and labels_sent:
                # The label path has read every label before the next load starts: after the
                # warm-up the label process may still be starting (imports, its group join),
                # and a measured load must not carry that.
                wait_metric(worker, "fraudstream_messages_in_total", labels_sent, 300,
                            f"{side}: labels read", labels={"topic": "labels"})
            time.sleep(2.0)  # let the label path finish before the next load
            after = (worker.buckets(), worker.buckets(LOOP_LAG), meter.read(time.monotonic()))
            histograms.append((rate, before, after, time.monotonic() - started))
    finally:
        worker.stop()
    # Pass-through copies the transaction, so both sides' outputs carry the tx_id.
    sent_at = {json.loads(r.value)["tx_id"]: r.timestamp for r in _read_all(s, t.transactions)}
    out_at = {json.loads(r.value)["tx_id"]: r.timestamp for r in _read_all(s, s.topics.scores)}
    result = {}
    for (rate, tx, _, measured), (_, before, after, _) in zip(windows, histograms):
        if not measured:  # the warm-ups (the first includes the group join)
            continue
        ids = [json.loads(v)["tx_id"] for _, v in tx]
        lat = np.array([out_at[i] - sent_at[i] for i in ids], dtype=np.float64)
        stamps = np.array([sent_at[i] for i in ids], dtype=np.float64) / 1000.0
        span = stamps.max() - stamps.min()
        result[f"{rate:g}"] = {
            "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max()), "n": int(lat.size),
            "achieved_tps": round(len(ids) / span, 1) if span > 0 else None,
            # the load's shape: transactions stamped within one 10 ms (p99 and most of them)
            **_bursts(stamps),
            # where in the load the tail was: an episode or spread over it
            "slowest_seconds": _slowest_seconds(stamps, lat),
            # the worker's own histogram over the same window (upper bucket bounds, ms)
            "histogram_p50_le": _ms(quantile_between(before[0], after[0], 0.5)),
            "histogram_p99_le": _ms(quantile_between(before[0], after[0], 0.99)),
            # how long single pieces of work held the worker's event loop (p99 of 50 ms ticks)
            "loop_lag_p99_le": _ms(quantile_between(before[1], after[1], 0.99)),
            # cores busy over the load and the wait for its last label (the broker's share
            # includes taking the load generator's records)
            "cpu_cores": busy_cores(after[2].minus(before[2])),
        }
    return result


def _bursts(stamps_s: np.ndarray) -> dict:
    """How bunched the offered load was: transactions per 10 ms of their broker timestamps."""
    per_10ms = np.bincount(((stamps_s - stamps_s.min()) * 100).astype(np.int64))
    busy = per_10ms[per_10ms > 0]
    return {"burst_10ms_p99": float(np.percentile(busy, 99)), "burst_10ms_max": int(busy.max())}


def _slowest_seconds(stamps_s: np.ndarray, lat_ms: np.ndarray, n: int = 3) -> list[dict]:
    """The ``n`` seconds of the load (by the transactions' broker timestamps, counted from
    its first) with the highest p99, each with its p99, max, how many of the load's
    transactions over its overall p99 fell in it, and when it began (``at``, Unix seconds:
    to find it in the broker's or the worker's logs)."""
    second = (stamps_s - stamps_s.min()).astype(np.int64)
    over = lat_ms > np.percentile(lat_ms, 99)
    rows = []
    for sec in np.unique(second):
        in_sec = second == sec
        rows.append({"second": int(sec), "at": round(float(stamps_s.min()) + int(sec), 3),
                     "p99": float(np.percentile(lat_ms[in_sec], 99)),
                     "max": float(lat_ms[in_sec].max()), "over_p99": int(over[in_sec].sum())})
    return sorted(rows, key=lambda r: (-r["p99"], -r["max"]))[:n]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run_bench(settings: Settings, *, n_tx: int = 200_000, rates: tuple[float, ...] = DEFAULT_RATES,
              latency_seconds: float = 30.0, labels: LabelMode = "all", label_lag_s: float = 2.0,
              seed: int = 0, own_broker: bool = True,
              only: Literal["throughput", "latency"] | None = None,
              load_streams: int = DEFAULT_LOAD_STREAMS, arrivals: Arrivals = "poisson",
              warmup_s: float = DEFAULT_WARMUP_S) -> dict:
    """Run both measurements (or ``only`` one) on both sides and return the JSON-able result."""
    tools = LoadTools.find()
    speed_before = core_speed_ms()  # the machine's pace, idle: see core_speed_ms
    with scratch_dir("fraudstream-bench-") as workdir:
        broker = None
        if own_broker:
            broker, settings = start_broker(settings, workdir, "benchmark")
        elif not metadata_ok(settings.bootstrap_servers[0],
                             security=settings.kafka_python_security()):
            raise RuntimeError(f"no broker answers at {settings.broker_url}")
        delay = settings.label_delay_days
        try:
            tag = uuid.uuid4().hex[:6]
            common = {"model_registry": workdir / "registry", "state_dir": workdir / "state"}
            # (a) throughput on one pre-loaded topic pair
            base = settings.model_copy(update={"topics": fresh_topics(f"bench-{tag}"), **common})
            create_topics(base)
            days = max(3, int(np.ceil(n_tx / 9700)))  # ~9.7k tx/day with 5,000 customers
            df = sim.simulate(sim.SimulationConfig(n_days=days, seed=seed)).head(n_tx)
            tx, lab = _lines(df, labels, delay) if only != "latency" else ([], [])
            say(f"pre-loading {len(tx):,} transactions and {len(lab):,} labels with kcat ...")
            for p in (_produce(tools, base, base.topics.transactions, tx, workdir / "tx.txt"),
                      _produce(tools, base, base.topics.labels, lab, workdir / "labels.txt")):
                if p is not None:
                    p.wait(timeout=600)
            tps = {side: float("nan") for side in SIDES}
            scoring_tps = dict(tps)
            cpu: dict = {side: None for side in SIDES}
            broker_pid = broker.status().pid if broker is not None else None
            for side in SIDES if only != "latency" else ():
                say(f"throughput, {side} ...")
                tps[side], scoring_tps[side], cpu[side] = _throughput(
                    base, tag, side, len(tx), len(lab), workdir, timeout=1200,
                    broker_pid=broker_pid)
                say(f"  {side}: {tps[side]:,.0f} tx/s to the last output, "
                    f"{scoring_tps[side]:,.0f} tx/s to the last score; CPU a transaction: "
                    f"{cpu[side]}")

            # (b) latency: fresh topics per side, the same windows of a new simulated stream
            # the windows: 1,000 as fast as they go (the group join), warmup_s at the first
            # rate, then each rate for latency_seconds; only the last are measured
            plan = [(None, 1000, False), (rates[0], int(rates[0] * warmup_s), False),
                    *((r, int(r * latency_seconds), True) for r in rates)]
            plan = [p for p in plan if p[1] > 0]
            need = sum(n for _, n, _ in plan)
            days = max(3, int(np.ceil(need / 9700)) + 1)
            df = sim.simulate(sim.SimulationConfig(n_days=days, seed=seed + 1)).head(need)
            cuts = np.cumsum([0] + [n for _, n, _ in plan])
            windows = []
            for (rate, _, measured), lo, hi in zip(plan, cuts[:-1], cuts[1:]):
                tx, lab = _lines(df.iloc[lo:hi], labels, delay)
                windows.append((rate, tx, lab, measured))
            latency: dict = {side: {} for side in SIDES}
            for side in SIDES if only != "throughput" else ():
                lat_topics = fresh_topics(f"bench-{tag}-lat-{side}")
                lat_base = settings.model_copy(update={"topics": lat_topics, **common})
                create_topics(lat_base)
                say(f"latency, {side} ...")
                latency[side] = _latency(lat_base, tag, side, windows, tools, workdir, label_lag_s,
                                         load_streams, arrivals, broker_pid)
        finally:
            if broker is not None:
                broker.stop()
        speed_after = core_speed_ms()
        top = f"{max(rates):g}"
        by_rate = {}
        for r in rates if only != "throughput" else ():
            key = f"{r:g}"
            pipe, thru = latency["pipeline"][key], latency["passthrough"][key]
            ratio = round(pipe["p99"] / thru["p99"], 2) if thru["p99"] > 0 else None
            by_rate[key] = {"pipeline": _rounded(pipe), "passthrough": _rounded(thru),
                            "p99_ratio": ratio}
        return {
            "passthrough_tps": _finite(tps["passthrough"], 1),
            "pipeline_tps": _finite(tps["pipeline"], 1),
            "ratio": _finite(tps["pipeline"] / tps["passthrough"], 3),
            # scores only (the label path may finish later, in its own process)
            "pipeline_scoring_tps": _finite(scoring_tps["pipeline"], 1),
            "scoring_ratio": _finite(scoring_tps["pipeline"] / tps["passthrough"], 3),
            "label_process": settings.label_process,
            # CPU a transaction in the throughput runs, per process (stream/cpu_meter.py), and
            # the throughput ratio it allows: the pipeline cannot outrun the machine's cores
            "cpu_per_tx": cpu,
            "ratio_cpu_bound": ratio_bound(cpu["pipeline"], tps["passthrough"],
                                           os.cpu_count() or 1),
            "offered_tps": max(rates),
            "latency_ms": {k: round(v, 1) for k, v in latency["pipeline"].get(top, {}).items()
                           if k in ("p50", "p95", "p99", "max")},
            "latency_by_offered_tps": by_rate,
            "p99_pipeline_over_passthrough": by_rate[top]["p99_ratio"] if by_rate else None,
            "labels": labels,
            "label_lag_s": label_lag_s,
            "load_streams": load_streams,
            "arrivals": arrivals,
            "warmup_seconds": warmup_s,
            "latency_seconds": latency_seconds,
            "transactions": n_tx,
            "cores": os.cpu_count(),
            "machine": platform.platform(),
            "python": platform.python_version(),
            # lower is faster; runs compare where these agree (bench_support.core_speed_ms)
            "core_speed_ms": {"before": speed_before, "after": speed_after},
            "note": "one worker (its scoring process and, unless inline, its label process); "
                    f"broker, load generator ({'pv' if arrivals == 'pv' else 'pace'} | kcat) and "
                    "worker share the machine's cores; "
                    "latency in ms from broker timestamps, histogram_*_le from the worker's own "
                    "histogram",
        }


def _finite(x: float, digits: int) -> float | None:
    """JSON has no NaN: a measurement that was not run is null."""
    return round(x, digits) if np.isfinite(x) else None


def _rounded(d: dict) -> dict:
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in d.items()}
