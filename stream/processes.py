"""Worker processes started from Python (demo, benchmark, tests) and their metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .config import Settings
from .kafka_local import free_port

__all__ = ["settings_env", "ServiceProcess", "WorkerProcess", "TrainerProcess",
           "LATENCY", "LOOP_LAG", "quantile_between"]

# The worker's own end-to-end histogram (stream/metrics.py): producer timestamp to score.
LATENCY = "fraudstream_end_to_end_latency_seconds"
LOOP_LAG = "fraudstream_event_loop_lag_seconds"


def settings_env(settings: Settings, *, as_configured: bool = False,
                 **extra: object) -> dict[str, str]:
    """The environment that makes a subprocess build exactly ``settings`` (plus ``extra``):
    its broker, topics, folders and credentials, the rest left at their defaults, or, with
    ``as_configured``, also every other field set on ``settings`` (by the environment, the
    command line or the code), as the measurement programs' workers must run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    env["FRAUDSTREAM_BROKER_URL"] = settings.broker_url
    env["FRAUDSTREAM_PARTITIONS"] = str(settings.partitions)
    env["FRAUDSTREAM_MODEL_REGISTRY"] = str(settings.model_registry)
    env["FRAUDSTREAM_STATE_DIR"] = str(settings.state_dir)
    for name, value in settings.topics.model_dump().items():
        env[f"FRAUDSTREAM_TOPICS__{name.upper()}"] = value
    # A secure broker: the same credentials (a subprocess must not fall back to PLAINTEXT).
    env["FRAUDSTREAM_SECURITY_PROTOCOL"] = settings.security_protocol
    for name in ("sasl_mechanism", "sasl_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:
            env[f"FRAUDSTREAM_{name.upper()}"] = str(value)
    for name in ("sasl_password", "ssl_key_password"):
        secret = getattr(settings, name)
        if secret is not None:
            env[f"FRAUDSTREAM_{name.upper()}"] = secret.get_secret_value()
    if as_configured:
        values = settings.model_dump(mode="json")
        for name in sorted(settings.model_fields_set):
            key = f"FRAUDSTREAM_{name.upper()}"
            if name == "topics" or key in env or values[name] is None:
                continue
            value = values[name]
            env[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    for key, value in extra.items():
        env[f"FRAUDSTREAM_{key.upper()}"] = str(value)
    return env


class ServiceProcess:
    """A ``fraudstream <command>`` subprocess with its own metrics port and log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path,
                 metrics_port: int, metrics_env: str) -> None:
        self.metrics_port = metrics_port
        env = {**env, metrics_env: str(metrics_port)}
        self.log_path = log_path
        self._log = open(log_path, "ab")
        cmd = [sys.executable, "-m", "fraudstream.stream.cli", *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    #: Metrics endpoints of processes the service starts itself (a worker's label process).
    extra_ports: tuple[int, ...] = ()

    def scrape(self) -> list[tuple[str, dict[str, str], float]]:
        """Every sample on the service's metrics endpoints (raises OSError when its own is
        down; a child's that is not up yet adds nothing)."""
        samples = _scrape(self.metrics_port)
        for port in self.extra_ports:
            try:
                samples += _scrape(port)
            except OSError:
                pass
        return samples

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Sum of the samples named ``name`` matching ``labels``; None when nothing matches."""
        try:
            samples = self.scrape()
        except OSError:
            return None
        values = [v for n, lab, v in samples
                  if n == name and all(lab.get(k) == x for k, x in (labels or {}).items())]
        return sum(values) if values else None

    def buckets(self, histogram: str = LATENCY) -> dict[float, float]:
        """A histogram's cumulative counts by upper bound; empty when the endpoint is down."""
        out: dict[float, float] = {}
        try:
            for name, labels, value in self.scrape():
                if name == histogram + "_bucket":
                    le = labels["le"]
                    out[float("inf") if le == "+Inf" else float(le)] = value
        except OSError:
            pass
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 60) -> str:
        """The log's last ``n`` lines, after its first error and the lines that follow it: a
        crash's traceback is logged long before faust's shutdown lines end the log."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        marks = ("Traceback", "] [ERROR] ", "] [CRITICAL] ")
        first = next((i for i, line in enumerate(lines[:-n])
                      if any(mark in line for mark in marks)), None)
        head = [] if first is None else [*lines[first:first + 40], "[...]"]
        return "\n".join(head + lines[-n:])


class WorkerProcess(ServiceProcess):
    """A ``fraudstream worker`` subprocess (with its label process, by default, as its child:
    both in the subprocess's process group, so :meth:`stop` signals both; :meth:`metric`
    sums over both endpoints)."""

    def __init__(self, env: dict[str, str], log_path: Path, worker_id: str,
                 passthrough: bool = False, metrics_port: int | None = None) -> None:
        args = ["worker", "--loglevel", "info"] + (["--passthrough"] if passthrough else [])
        label_port = free_port()
        self.extra_ports = () if passthrough else (label_port,)
        super().__init__(args, {**env, "FRAUDSTREAM_WORKER_ID": worker_id,
                                "FRAUDSTREAM_LABEL_METRICS_PORT": str(label_port)}, log_path,
                         metrics_port or free_port(), "FRAUDSTREAM_METRICS_PORT")


class TrainerProcess(ServiceProcess):
    """A ``fraudstream trainer`` subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path, metrics_port: int | None = None) -> None:
        super().__init__(["trainer", "--loglevel", "info"], env, log_path,
                         metrics_port or free_port(), "FRAUDSTREAM_TRAINER_METRICS_PORT")


def _scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def quantile_between(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of the observations between two scrapes of a histogram.

    It is the upper bound of the bucket the quantile falls in (no interpolation: a p99 of
    "at most 50 ms" is what the buckets can say); None when nothing was observed in between.
    """
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target = q * counts[-1]
    for bound, cumulative in zip(bounds, counts):
        if cumulative >= target:
            return bound
    return bounds[-1]
