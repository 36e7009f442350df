"""A worker's label process, run as a child of its scoring process (``label_process="child"``).

The scoring process starts it with the same settings (the environment, plus its own metrics
port and ``--role label``), watches it and restarts it if it dies; the label path then never
holds the scoring event loop, and the label process runs ``label_nice`` below it and under
Linux's SCHED_IDLE policy (``label_sched_idle``), so under load the scores and the broker get
the CPU first and the labels catch up (stream/app.py).

The child dies with its parent: it asks the kernel for SIGTERM when the parent goes
(``PR_SET_PDEATHSIG``), so a scoring process killed with SIGKILL leaves no label process
consuming under a dead worker's id, and checks the parent is still the one that started it
(the parent could die before the request was made).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

from .config import Settings

__all__ = ["LabelChild", "follow_parent"]

log = logging.getLogger("fraudstream.worker")
_PR_SET_PDEATHSIG = 1
_RESTART_AFTER_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # backoff while it keeps dying at once


def follow_parent(parent_pid: int, niceness: int, sched_idle: bool = False) -> None:
    """In the label process, first thing: die with the parent, run below it (``niceness``,
    and Linux's SCHED_IDLE policy if ``sched_idle``)."""
    _check_parent(parent_pid)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this label process will "
                        "not stop with its scoring process", ctypes.get_errno())
    _check_parent(parent_pid)  # it may have gone before the request was made
    if niceness:
        os.nice(niceness)
    if sched_idle:
        _sched_idle()


def _sched_idle() -> None:
    """Every thread of this process (the policy is per thread; threads started later inherit
    it) under SCHED_IDLE. Where the platform has none, the nice value alone stays."""
    if not hasattr(os, "SCHED_IDLE"):
        log.warning("no SCHED_IDLE on %s: the label process runs niced only", sys.platform)
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
        except OSError as exc:  # a sandbox that refuses it: learning matters more
            log.warning("SCHED_IDLE refused (%s): the label process runs niced only", exc)
            return


def _check_parent(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        raise SystemExit(f"the scoring process {parent_pid} is gone; the label process stops")


class LabelChild:
    """Starts, watches and stops the label process of this scoring process."""

    def __init__(self, settings: Settings, loglevel: str) -> None:
        self.settings = settings
        self.loglevel = loglevel
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._next_start = 0.0
        self._stopping = False

    def command(self) -> list[str]:
        return [sys.executable, "-m", "fraudstream.stream.cli", "worker", "--role", "label",
                "--parent-pid", str(os.getpid()), "--loglevel", self.loglevel]

    def start(self) -> None:
        s = self.settings
        env = {**os.environ, "FRAUDSTREAM_METRICS_PORT": str(s.label_metrics_port)}
        # Same stdout and stderr: one log per worker (faust's lines carry the pid).
        self.proc = subprocess.Popen(self.command(), env=env)
        self._started_at = time.monotonic()
        log.info("started the label process (pid %d, metrics port %d)", self.proc.pid,
                 s.label_metrics_port)

    def watch(self) -> None:
        """Called every second: restart a label process that died (not while stopping)."""
        if self._stopping or self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            quick = now - self._started_at < 60
            delay = _RESTART_AFTER_S[min(self.restarts, len(_RESTART_AFTER_S) - 1)] if quick else 0.0
            self.restarts = self.restarts + 1 if quick else 0
            self._next_start = now + delay
            log.error("the label process exited with status %s; restarting it in %.0f s "
                      "(labels wait in Kafka meanwhile: none is lost)", self.proc.returncode,
                      delay)
        if now >= self._next_start:
            self._next_start = 0.0
            self.start()

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) and stop watching it; returns at once."""
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask it to stop and wait up to ``timeout`` seconds, then kill it."""
        self.terminate()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the label process did not stop in %.0f s; killing it", timeout)
            proc.kill()
            proc.wait()
