"""What the measurement programs share (``bench``, ``bench --recovery``, ``soak``): progress on
stderr, topic names of their own, a broker of their own, record counts, and waiting for a
worker's metric."""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kafka import KafkaConsumer, TopicPartition

from .config import Settings, TopicNames
from .kafka_local import LocalBroker, free_port
from .processes import WorkerProcess

__all__ = ["core_speed_ms", "count_records", "fresh_topics", "own_broker", "say", "scratch_dir",
           "wait_metric"]

#: The fixed workload of :func:`core_speed_ms`: a transaction as producers send it.
_SPEED_RECORD = (b'{"tx_id": "t-000123", "ts": 1764979200.25, "card_id": "c-0042", '
                 b'"terminal_id": "term-0917", "amount": 57.31}')


def say(msg: str) -> None:
    """A progress line on stderr (stdout is for the result)."""
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for a measurement's broker, state, load files and logs.

    Removed when the measurement ends, since a full bench leaves hundreds of MiB of broker
    data; kept, and named on stderr, when it fails, for its worker and broker logs.
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield workdir
    except BaseException:
        say(f"kept {workdir} for its logs (the run failed)")
        raise
    shutil.rmtree(workdir, ignore_errors=True)


def core_speed_ms(repeats: int = 5, n: int = 50_000) -> float:
    """Milliseconds one core takes for a fixed pure-Python workload (decode a transaction,
    some float arithmetic, a dict of features: a worker's kind of work), the best of
    ``repeats``. The machines this project is measured on are not all alike, nor is one of
    them from hour to hour (2026-12-06: a plain Python loop took 0.26-0.41 s within the same
    hour, and the bench's rates moved with it), so a bench's figures compare with another's
    where this reads about the same."""
    decoder = json.JSONDecoder()
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(n):
            tx = decoder.decode(_SPEED_RECORD.decode("ascii"))
            amount = tx["amount"] + i % 7
            feats = {"log_amount": math.log1p(amount), "hour": (tx["ts"] % 86400.0) / 3600.0,
                     "card": tx["card_id"][-4:], "n": float(i % 30)}
            feats["ratio"] = feats["log_amount"] / (1.0 + feats["n"])
        best = min(best, time.perf_counter() - started)
    return round(best * 1000.0, 1)


def fresh_topics(prefix: str) -> TopicNames:
    """Every topic of the contract, named ``<prefix>-<default name>``."""
    return TopicNames(**{k: f"{prefix}-{v}" for k, v in TopicNames().model_dump().items()})


def own_broker(settings: Settings, workdir: Path, what: str) -> tuple[LocalBroker, Settings]:
    """A fresh local broker with its data in ``workdir/kafka``, and ``settings`` pointing at it."""
    broker = LocalBroker(workdir / "kafka", settings.kafka_home, port=free_port(), heap_mb=1024)
    status = broker.start(progress=say)
    say(f"{what} broker at {status.bootstrap} (data in {workdir})")
    return broker, settings.model_copy(update={"broker_url": f"kafka://{status.bootstrap}"})


def count_records(settings: Settings, topics: Iterable[str]) -> int:
    """Records currently in ``topics`` (end minus start offsets: what a full read would read)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             **settings.kafka_python_security())
    try:
        parts = [TopicPartition(t, p) for t in topics
                 for p in (consumer.partitions_for_topic(t) or [])]
        if not parts:
            return 0
        ends, starts = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        consumer.close()


def wait_metric(worker: WorkerProcess, name: str, n: float, timeout: float, what: str,
                labels: dict[str, str] | None = None,
                progress: Callable[[float], None] | None = None) -> None:
    """Until the worker's metric ``name`` reaches ``n``; raises if the worker exits or time runs
    out. ``progress`` hears the value at most every 10 s."""
    deadline = time.monotonic() + timeout
    last_said = 0.0
    got = 0.0
    while time.monotonic() < deadline:
        got = worker.metric(name, labels) or 0
        if got >= n:
            return
        if worker.proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.proc.returncode}); "
                               f"see {worker.log_path}")
        if progress is not None and time.monotonic() - last_said > 10:
            progress(got)
            last_said = time.monotonic()
        time.sleep(1.0)
    raise RuntimeError(f"{what}: {got:,.0f} of {n:,.0f} after {timeout:.0f} s; "
                       f"see {worker.log_path}")
