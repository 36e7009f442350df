"""CPU time the bench's processes spend, read from ``/proc`` (Linux): where the cores go.

The throughput ratio (pipeline against passthrough) compares two runs that both keep the
machine's cores busy, so it is bounded by their CPU cost per transaction: a pipeline that
needs twice the CPU a transaction on the same cores runs at most half the rate. The bench
reads, for each side, the CPU seconds of the worker's scoring process (its process group's
leader), of its label process (the rest of the group), of the broker, and of the bench
itself (its polling consumers), between the side's first output and its end.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuReading", "CpuMeter", "busy_cores", "per_transaction", "process_cpu_s",
           "ratio_bound"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of a living process (all its threads), or None."""
    f = _stat_fields(pid)
    # fields from state (3rd of the file): utime is the 14th, stime the 15th
    return None if f is None else (int(f[11]) + int(f[12])) / _TICKS


def _group_members(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat_fields(int(entry.name))
            if f is not None and int(f[2]) == pgid:
                pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far: the worker's scoring process, its other processes (the label
    process), the broker and this (the bench's) process; ``at`` on the monotonic clock."""

    scoring: float
    labels: float
    broker: float
    harness: float
    at: float

    def minus(self, before: "CpuReading") -> dict[str, float]:
        parts = {k: getattr(self, k) - getattr(before, k)
                 for k in ("scoring", "labels", "broker", "harness")}
        return {**parts, "total": sum(parts.values()), "wall": self.at - before.at}


class CpuMeter:
    """Reads the CPU of a worker's process group (``leader``: the pid that started it with
    its own session) and of the broker (``broker_pid``, None where the broker is elsewhere)."""

    def __init__(self, leader: int, broker_pid: int | None) -> None:
        self.leader = leader
        self.broker_pid = broker_pid
        # A process that exits takes its CPU with it: the last reading of each pid is kept.
        self._seen: dict[int, float] = {}

    def _last(self, pid: int) -> float:
        """The process's CPU now, or its last reading once it has exited."""
        cpu = process_cpu_s(pid)
        if cpu is not None:
            self._seen[pid] = cpu
        return self._seen.get(pid, 0.0)

    def read(self, now: float) -> CpuReading:
        for pid in _group_members(self.leader):
            self._last(pid)
        scoring = self._seen.get(self.leader, 0.0)
        labels = sum(v for pid, v in self._seen.items()
                     if pid not in (self.leader, self.broker_pid))
        broker = self._last(self.broker_pid) if self.broker_pid else 0.0
        me = resource.getrusage(resource.RUSAGE_SELF)
        return CpuReading(scoring, labels, broker, me.ru_utime + me.ru_stime, now)


def per_transaction(spent: dict[str, float], n: int) -> dict:
    """CPU microseconds a transaction, per process, over a throughput run's ``n`` transactions
    (those output after the first reading), and how many cores were busy on average. The
    bench's window ends a few idle seconds after the last output (the wait for the training
    examples to stop growing): a worker at rest spends a few hundredths of a core."""
    per_tx = {f"{k}_us": round(v * 1e6 / max(n, 1), 1) for k, v in spent.items() if k != "wall"}
    busy = busy_cores(spent)
    return {**per_tx, "busy_cores": busy["total"] if busy else None,
            "seconds": round(spent["wall"], 1)}


def busy_cores(spent: dict[str, float]) -> dict[str, float] | None:
    """Average cores each process kept busy over a window (``CpuReading.minus``)."""
    wall = spent["wall"]
    if wall <= 0:
        return None
    return {k: round(v / wall, 2) for k, v in spent.items() if k != "wall"}


def ratio_bound(pipeline: dict | None, passthrough_tps: float, cores: int) -> float | None:
    """The highest throughput ratio the pipeline's CPU a transaction (all its processes and
    the broker, :func:`per_transaction`) allows: every core busy, ``cores / CPU a
    transaction`` transactions a second, against the passthrough's measured rate."""
    if not pipeline or not pipeline["total_us"] or not math.isfinite(passthrough_tps):
        return None
    return round(cores * 1e6 / pipeline["total_us"] / passthrough_tps, 3)
