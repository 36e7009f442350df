"""``fraudstream bench --recovery``: how long a restarted worker is blind, against history length.

For each history length: fresh topics on a fresh broker, that many simulated transactions
and their labels (every transaction labelled, 7 days later in event time, as ``make demo``
does), one worker scoring them all; then three restarts, each followed by a new transaction:

* ``sigterm``: stopped and started again (same state folder): a deploy;
* ``sigkill``: killed and started again at once (same state folder): a crash. The group
  waits ``FRAUDSTREAM_SESSION_TIMEOUT_S`` for the dead member first;
* ``new_host``: killed, and a worker with an empty state folder takes over: a lost disk or a
  move to another machine; it restores from the changelogs and the terminal-events topic.
  Right after a fast load nothing is compacted yet (the history is minutes old), so this
  reads it all;
* ``new_host_compacted``: the same after the broker has compacted the changelogs, as in a
  service that has run for longer than a segment: a trickle of traffic rolls every
  changelog segment (``segment.ms``), then the cleaner runs. What remains is the live state
  plus tombstones younger than ``delete.retention.ms``.

Each time is from the start of the new process until the new transaction's score is written
(read back from ``scores``); ``ready_s`` is the worker's own
``fraudstream_worker_ready_seconds``. The sizes of the state it restores from are printed
too: changelog records written, the changelog data the broker holds (its segment files,
before and after compaction) and terminal-event messages.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from . import simulator as sim
from .bench_support import count_records, fresh_topics, own_broker, say, scratch_dir, wait_metric
from .config import Settings
from .processes import WorkerProcess, settings_env
from .topics import changelog_topics, create_topics, internal_topics

__all__ = ["run_recovery_bench", "SCENARIOS"]

SCENARIOS = ("sigterm", "sigkill", "new_host", "new_host_compacted")


def _log_bytes(log_dir: Path, topics: list[str]) -> int:
    """Bytes of record data the broker holds for ``topics`` (its ``*.log`` segment files)."""
    return sum(f.stat().st_size for t in topics for f in log_dir.glob(f"{t}-*/*.log"))


class _ScoreWatch:
    """Reads ``scores`` from its current end, to see one transaction's score arrive."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                      enable_auto_commit=False,
                                      **settings.kafka_python_security())
        parts = [TopicPartition(settings.topics.scores, p)
                 for p in self.consumer.partitions_for_topic(settings.topics.scores)]
        self.consumer.assign(parts)
        self.consumer.seek_to_end()
        for tp in parts:
            self.consumer.position(tp)  # resolve the end now, before the probe is sent

    def wait_for(self, tx_id: str, timeout: float, worker: WorkerProcess) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the worker exited; see {worker.log_path}")
            for records in self.consumer.poll(timeout_ms=200).values():
                for r in records:
                    if json.loads(r.value)["tx_id"] == tx_id:
                        return time.monotonic()
        raise RuntimeError(f"{tx_id} not scored within {timeout:.0f} s; see {worker.log_path}")

    def close(self) -> None:
        self.consumer.close()


def _probe(settings: Settings, tx_id: str, ts: float) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                             **settings.kafka_python_security())
    value = {"tx_id": tx_id, "ts": ts, "card_id": f"card-{tx_id}", "terminal_id": "t-probe",
             "amount": 12.5}
    producer.send(settings.topics.transactions, key=value["card_id"].encode(),
                  value=json.dumps(value).encode())
    producer.flush()
    producer.close()


def _restart(settings: Settings, env: dict[str, str], workdir: Path, worker: WorkerProcess,
             scenario: str, ts: float, timeout: float) -> tuple[WorkerProcess, dict[str, Any]]:
    worker_id = f"bench-{uuid.uuid4().hex[:6]}" if scenario.startswith("new_host") else "bench-w1"
    watch = _ScoreWatch(settings)
    try:
        worker.stop(signal.SIGTERM if scenario == "sigterm" else signal.SIGKILL)
        started = time.monotonic()
        new = WorkerProcess(env, workdir / f"{scenario}.log", worker_id)
        tx_id = f"probe-{scenario}-{uuid.uuid4().hex[:6]}"
        _probe(settings, tx_id, ts)
        scored_at = watch.wait_for(tx_id, timeout, new)
    finally:
        watch.close()
    ready = new.metric("fraudstream_worker_ready_seconds")
    return new, {"restart_s": round(scored_at - started, 1),
                 "ready_s": None if ready is None else round(ready, 1)}


def _one_history(settings: Settings, n_tx: int, workdir: Path, log_dir: Path, seed: int,
                 timeout: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    topics = fresh_topics(f"rec-{tag}")
    s = settings.model_copy(update={"topics": topics, "app_id": f"rec-{tag}",
                                    "model_registry": workdir / f"registry-{tag}",
                                    "state_dir": workdir / f"state-{tag}"})
    create_topics(s)
    days = max(3, int(n_tx / 9700) + 8)  # ~9.7k tx/day with 5000 customers, plus label delay
    df = sim.simulate(sim.SimulationConfig(n_days=days, seed=seed)).head(n_tx)
    events = [e for e in sim.events(df, 7.0) if e[0] == "transaction" or e[3] <= df["ts"].max()]
    say(f"history of {len(df):,} transactions and "
        f"{sum(1 for e in events if e[0] == 'label'):,} labels ...")
    env = settings_env(s, app_id=s.app_id, label_delay_days=7)
    worker = WorkerProcess(env, workdir / f"history-{tag}.log", "bench-w1")
    try:
        sim.produce_to_kafka(iter(events), s.bootstrap_servers,
                             {"transaction": topics.transactions, "label": topics.labels},
                             security_kwargs=s.kafka_python_security(),
                             progress=lambda c: say(f"  produced {c['transactions']:,} tx"))
        wait_metric(worker, "fraudstream_transactions_scored_total", len(df), timeout,
                    "transactions scored",
                    progress=lambda got: say(f"  scored {got:,.0f}/{len(df):,}"))
        time.sleep(3)  # the last commits and changelog writes
        out: dict[str, Any] = {
            "transactions": len(df),
            "changelog_records_written": count_records(s, changelog_topics(s)),
            "changelog_bytes": _log_bytes(log_dir, changelog_topics(s)),
            "terminal_events": count_records(s, [internal_topics(s)["terminal_events"]]),
        }
        say(f"  state to restore from: {out['changelog_records_written']:,} changelog records "
            f"written ({out['changelog_bytes'] / 2**20:,.1f} MiB held), "
            f"{out['terminal_events']:,} terminal-event messages")
        ts = float(df["ts"].max()) + 60.0
        for i, scenario in enumerate(SCENARIOS):
            if scenario == "new_host_compacted":
                out["changelog_bytes_compacted"] = _compact(s, log_dir, ts + i)
            worker, result = _restart(s, env, workdir, worker, scenario, ts + i, timeout)
            out[scenario] = result
            say(f"  {scenario}: scoring again {result['restart_s']} s after the restart "
                f"(worker ready after {result['ready_s']} s)")
    finally:
        worker.stop()
    return out


def _compact(settings: Settings, log_dir: Path, ts: float) -> int:
    """Trickle transactions past a segment's age, then wait for the log cleaner; returns the
    bytes of changelog data left."""
    from kafka import KafkaProducer

    from .topics import CHANGELOG_CONFIG

    roll_s = int(CHANGELOG_CONFIG["segment.ms"]) / 1000.0 + 15.0
    say(f"  trickling transactions for {roll_s:.0f} s so every changelog segment rolls ...")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                             **settings.kafka_python_security())
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < roll_s:
        for _ in range(20):  # 20 cards a second: every partition gets writes
            card = f"trickle-{i % 400}"
            value = {"tx_id": f"trickle-{i}", "ts": ts, "card_id": card,
                     "terminal_id": "t-trickle", "amount": 1.0}
            producer.send(settings.topics.transactions, key=card.encode(),
                          value=json.dumps(value).encode())
            i += 1
        time.sleep(1.0)
    producer.flush()
    producer.close()
    topics = changelog_topics(settings)
    before = _log_bytes(log_dir, topics)
    last, stable_since = before, time.monotonic()
    while time.monotonic() - stable_since < 45:  # the cleaner wakes every 15 s
        time.sleep(5)
        now = _log_bytes(log_dir, topics)
        if now != last:
            last, stable_since = now, time.monotonic()
    say(f"  compacted: changelog data {before / 2**20:,.1f} -> {last / 2**20:,.1f} MiB")
    return last


def run_recovery_bench(settings: Settings, histories: tuple[int, ...] = (100_000, 300_000),
                       seed: int = 0, timeout: float = 1800.0) -> dict[str, Any]:
    """Restart times against history length, on a fresh broker of its own."""
    with scratch_dir("fraudstream-recovery-") as workdir:
        broker, s = own_broker(settings, workdir, "recovery benchmark")
        try:
            log_dir = workdir / "kafka" / "kraft-logs"  # the broker's log.dirs (kafka_local.py)
            runs = [_one_history(s, n, workdir, log_dir, seed + i, timeout)
                    for i, n in enumerate(histories)]
        finally:
            broker.stop()
        return {"histories": runs, "session_timeout_s": settings.session_timeout_s,
                "note": "seconds from the new worker process's start to a new transaction's score"}


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (for the README and notes)."""
    rows = ["| history (tx) | changelog records written | changelog MiB held (compacted) | "
            "terminal events | "
            + " | ".join(f"{s} restart s (ready s)" for s in SCENARIOS) + " |",
            "|---:|---:|---:|---:|" + "---:|" * len(SCENARIOS)]
    for r in result["histories"]:
        rows.append(f"| {r['transactions']:,} | {r['changelog_records_written']:,} | "
                    f"{r['changelog_bytes'] / 2**20:,.1f} "
                    f"({r.get('changelog_bytes_compacted', 0) / 2**20:,.1f}) | "
                    f"{r['terminal_events']:,} | "
                    + " | ".join(f"{r[s]['restart_s']} ({r[s]['ready_s']})" for s in SCENARIOS)
                    + " |")
    return "\n".join(rows)
