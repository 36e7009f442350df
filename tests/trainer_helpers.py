"""Helpers for the trainer's tests: a simulated training window, phases of a simulated
stream, group state."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from fraudstream.models.features import FEATURE_NAMES, compute_features
from fraudstream.models.window import WindowData
from fraudstream.stream import simulator as sim
from fraudstream.stream.config import Settings
from fraudstream.stream.processes import ServiceProcess


def simulated_window(unknown_share: float = 0.0) -> WindowData:
    """30 simulated days of 400 customers as a training window. The online learner's scores
    at scoring time are informative and imperfect; ``unknown_share`` of them are unknown."""
    df = sim.simulate(sim.SimulationConfig(n_customers=400, n_terminals=800, n_days=30))
    features = compute_features(df, 7 * 86400)
    order = np.argsort(df["ts"].to_numpy(), kind="stable")
    y = df["is_fraud"].to_numpy(dtype=np.int64)[order]
    rng = np.random.default_rng(0)
    online = np.clip(0.35 * y + rng.uniform(0, 0.7, len(y)), 0, 1)
    if unknown_share:
        online[rng.random(len(y)) < unknown_share] = np.nan
    return WindowData(
        feature_names=list(FEATURE_NAMES),
        X=features[FEATURE_NAMES].to_numpy(dtype=np.float64)[order],
        y=y,
        ts=df["ts"].to_numpy(dtype=np.float64)[order],
        card=df["card_id"].to_numpy(dtype=object)[order],
        tx_id=df["tx_id"].to_numpy(dtype=object)[order],
        score_online=online,
    )


def produce(settings: Settings, df: pd.DataFrame, delay_days: float, transactions_only: bool = False) -> dict:
    evs = sim.events(df, delay_days)
    if transactions_only:
        evs = (e for e in evs if e[0] == "transaction")
    return sim.produce_to_kafka(evs, bootstrap_servers=settings.bootstrap_servers,
                                topics={"transaction": settings.topics.transactions,
                                        "label": settings.topics.labels})


def wait_for(what: str, check: Callable[[], object], timeout: float, *procs: ServiceProcess,
             every: float = 0.5):
    """Poll ``check`` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        for p in procs:
            if p.proc.poll() is not None:
                raise AssertionError(f"{what}: a process exited ({p.proc.returncode}):\n{p.log_tail()}")
        time.sleep(every)
    logs = "\n---\n".join(p.log_tail(40) for p in procs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


def group_members(settings: Settings, group: str) -> int:
    """Members of a stable consumer group that hold partitions (0 while rebalancing)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        try:
            desc = admin.describe_groups([group]).get(group) or {}
        except KafkaError:  # the group's coordinator is not up yet
            return 0
        if desc.get("group_state") != "Stable":
            return 0
        return len(desc.get("members") or [])
    finally:
        admin.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fraudstream.stream.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def model_version(proc: ServiceProcess) -> str | None:
    """The worker's decision model, from its fraudstream_model_info metric."""
    try:
        samples = proc.scrape()
    except OSError:
        return None
    for name, labels, _ in samples:
        if name == "fraudstream_model_info":
            return labels.get("decision_model")
    return None


def log_values(path: Path, pattern: str) -> list[str]:
    return re.findall(pattern, path.read_text(errors="replace"))
