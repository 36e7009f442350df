"""``fraudstream bench``: throughput and latency of one worker process against a real broker.

In one run, on the same pre-loaded topic of simulated transactions:

(a) the ceiling: a passthrough worker (same faust/aiokafka stack, one record out per record
    in, no decoding or scoring);
(b) the full scoring pipeline (validate, card stage, repartition, terminal stage, score,
    snapshot);

then (c) end-to-end latency of the pipeline at a fixed offered load: transactions are
produced at ``--offered-tps`` and each score's broker timestamp is matched with its
transaction's broker timestamp (both stamped by clients on this machine's clock).

Throughput is measured on the output topic's record timestamps (first to last record), so
worker start-up and group join are not counted against either side.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from . import simulator as sim
from .config import Settings, TopicNames
from .kafka_local import LocalBroker, free_port, metadata_ok
from .processes import WorkerProcess, settings_env
from .topics import create_topics

__all__ = ["run_bench"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fresh_topics(tag: str) -> TopicNames:
    base = TopicNames()
    return TopicNames(**{k: f"bench-{tag}-{v}" for k, v in base.model_dump().items()})


def _count(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             **settings.kafka_python_security())
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def _wait_count(settings: Settings, topic: str, n: int, timeout: float,
                progress: Callable[[int], None]) -> int:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        got = _count(settings, topic)
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


def _timestamps_tps(records: list) -> float:
    ts = np.array([r.timestamp for r in records], dtype=np.float64) / 1000.0
    span = ts.max() - ts.min()
    return float(len(records) / span) if span > 0 else float("nan")


def _preload(settings: Settings, n_tx: int, seed: int) -> int:
    days = max(3, int(np.ceil(n_tx / 9700)))  # ~9.7k tx/day with 5000 customers
    df = sim.simulate(sim.SimulationConfig(n_days=days, seed=seed)).head(n_tx)
    _say(f"pre-loading {len(df):,} simulated transactions ...")
    counts = sim.produce_to_kafka(
        (e for e in sim.events(df, 7.0) if e[0] == "transaction"),
        bootstrap_servers=settings.bootstrap_servers,
        topics={"transaction": settings.topics.transactions, "label": settings.topics.labels},
        security_kwargs=settings.kafka_python_security(),
        progress=lambda c: _say(f"  produced {c['transactions']:,}"),
    )
    return counts["transactions"]


def _throughput(settings: Settings, env: dict, n: int, passthrough: bool, workdir: Path,
                timeout: float) -> float:
    name = "passthrough" if passthrough else "pipeline"
    worker = WorkerProcess(env, workdir / f"{name}.log", f"bench-{name}", passthrough=passthrough)
    try:
        got = _wait_count(settings, settings.topics.scores, n, timeout,
                          lambda c: _say(f"  {name}: {c:,}/{n:,} out"))
        if got < n:
            raise RuntimeError(f"{name} produced {got} of {n} records in {timeout:.0f}s; "
                               f"see {worker.log_path}")
    finally:
        worker.stop()
    return _timestamps_tps(_read_all(settings, settings.topics.scores))


def _latency(settings: Settings, env: dict, offered_tps: float, seconds: float, workdir: Path,
             seed: int) -> dict:
    worker = WorkerProcess(env, workdir / "latency.log", "bench-latency")
    try:
        days = 10
        df = sim.simulate(sim.SimulationConfig(n_days=days, seed=seed + 1))
        warm, timed = df.iloc[:500], df.iloc[500:500 + int(offered_tps * seconds)]
        topics = {"transaction": settings.topics.transactions, "label": settings.topics.labels}
        security = settings.kafka_python_security()
        sim.produce_to_kafka((e for e in sim.events(warm, 7.0) if e[0] == "transaction"),
                             settings.bootstrap_servers, topics, security_kwargs=security)
        # wait until the worker has joined and scored the warm-up, so the timed part is steady
        _wait_count(settings, settings.topics.scores, len(warm), 180,
                    lambda c: _say(f"  latency warm-up: {c}/{len(warm)} scored"))
        _say(f"offering {offered_tps:,.0f} tx/s for {seconds:.0f}s ...")
        sim.produce_to_kafka((e for e in sim.events(timed, 7.0) if e[0] == "transaction"),
                             settings.bootstrap_servers, topics, rate=offered_tps,
                             security_kwargs=security)
        total = len(warm) + len(timed)
        _wait_count(settings, settings.topics.scores, total, 120,
                    lambda c: _say(f"  latency: {c:,}/{total:,} scored"))
    finally:
        worker.stop()
    sent = {json.loads(r.value)["tx_id"]: r.timestamp for r in _read_all(settings, settings.topics.transactions)}
    timed_ids = set(timed["tx_id"])
    lat = np.array([r.timestamp - sent[v["tx_id"]]
                    for r in _read_all(settings, settings.topics.scores)
                    if (v := json.loads(r.value))["tx_id"] in timed_ids], dtype=np.float64)
    achieved = len(timed) / seconds
    return {
        "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)), "max": float(lat.max()), "n": int(lat.size),
        "achieved_offered_tps": round(achieved, 1),
    }


def run_bench(settings: Settings, *, n_tx: int = 200_000, offered_tps: float = 2000.0,
              latency_seconds: float = 30.0, seed: int = 0, own_broker: bool = True) -> dict:
    """Run the three measurements and return the JSON-able result."""
    workdir = Path(tempfile.mkdtemp(prefix="fraudstream-bench-"))
    broker = None
    if own_broker:
        broker = LocalBroker(workdir / "kafka", settings.kafka_home, port=free_port(), heap_mb=1024)
        status = broker.start(progress=_say)
        settings = settings.model_copy(update={"broker_url": f"kafka://{status.bootstrap}"})
        _say(f"benchmark broker at {status.bootstrap} (data in {workdir})")
    elif not metadata_ok(settings.bootstrap_servers[0],
                         security=settings.kafka_python_security()):
        raise RuntimeError(f"no broker answers at {settings.broker_url}")
    try:
        tag = uuid.uuid4().hex[:6]
        base = settings.model_copy(update={"topics": _fresh_topics(tag),
                                           "model_registry": workdir / "registry"})
        create_topics(base)
        n = _preload(base, n_tx, seed)

        results: dict[str, float] = {}
        for name, passthrough in (("passthrough", True), ("pipeline", False)):
            # same input topic, fresh output topics and consumer group for each run
            out = base.topics.model_copy(update={
                k: f"{v}-{name}" for k, v in base.topics.model_dump().items() if k != "transactions"})
            run_settings = base.model_copy(update={"topics": out})
            create_topics(run_settings)
            env = settings_env(run_settings, app_id=f"bench-{tag}-{name}")
            _say(f"measuring {name} over {n:,} transactions ...")
            results[name] = _throughput(run_settings, env, n, passthrough, workdir, timeout=1200)
            _say(f"  {name}: {results[name]:,.0f} tx/s")

        lat_settings = settings.model_copy(update={"topics": _fresh_topics(tag + "-lat"),
                                                   "model_registry": workdir / "registry-lat"})
        create_topics(lat_settings)
        latency = _latency(lat_settings, settings_env(lat_settings, app_id=f"bench-{tag}-lat"),
                           offered_tps, latency_seconds, workdir, seed)
    finally:
        if broker is not None:
            broker.stop()
    return {
        "passthrough_tps": round(results["passthrough"], 1),
        "pipeline_tps": round(results["pipeline"], 1),
        "ratio": round(results["pipeline"] / results["passthrough"], 3),
        "offered_tps": offered_tps,
        "latency_ms": {k: round(v, 1) for k, v in latency.items() if k in ("p50", "p95", "p99", "max")},
        "latency_samples": latency["n"],
        "achieved_offered_tps": latency["achieved_offered_tps"],
        "transactions": n,
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "note": "one worker process; broker, producer and worker share the machine's cores",
    }
