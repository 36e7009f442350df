"""``fraudstream worker``: run one worker process (scoring workers form one consumer group,
their label processes another; stream/app.py)."""

from __future__ import annotations

import logging
import sys

import faust
from prometheus_client import start_http_server

from .app import build_app
from .config import Settings
from .gc_watch import settle_heap
from .label_child import LabelChild, follow_parent
from .logs import limit_client_logs
from .stop_deadline import StopDeadline
from .topics import create_topics

__all__ = ["run_worker"]


def run_worker(settings: Settings, *, passthrough: bool = False, loglevel: str = "info",
               role: str | None = None, parent_pid: int | None = None) -> None:
    """Start the metrics endpoint and the faust worker; returns when the worker stops.

    A scoring process with ``label_process="child"`` starts its label process first and
    stops it when it stops itself. A stop that outlasts ``stop_timeout_s`` ends the process
    (stream/stop_deadline.py).
    """
    role = role or settings.worker_role
    if role == "label" and settings.label_process == "inline":
        raise SystemExit("FRAUDSTREAM_LABEL_PROCESS=inline: the scoring workers join labels "
                         "themselves and send no snapshots; a label process would learn "
                         "nothing (use child or separate)")
    if parent_pid is not None:
        follow_parent(parent_pid, settings.label_nice, settings.label_sched_idle)
    # The scoring loop gives up the GIL at every socket call, and while another thread
    # computes, getting it back takes up to the switch interval (Python's: 5 ms). faust's
    # consumer thread, where kafka_consumer_thread is set, took ~0.2 of a core at 2,000 tx/s;
    # the file saves and the metrics endpoint run in threads too.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000.0)
    create_topics(settings)  # idempotent; the internal topics must exist before subscribing
    worker_app = build_app(settings, passthrough=passthrough, role=role)
    if worker_app.scores_here and not passthrough:
        worker_app.follower.load_initial()  # a worker started later begins with the champion
    log = logging.getLogger("fraudstream.worker")
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.metrics_bind,
                              registry=worker_app.metrics_registry)
        except OSError as exc:
            if role == "score":
                raise
            # Learning every label matters more than its metrics: a label process that
            # exited here would be restarted into the same clash, and learn nothing.
            log.error("label process: no metrics endpoint on port %d (%s); set "
                      "FRAUDSTREAM_LABEL_METRICS_PORT per worker on a shared host",
                      settings.metrics_port, exc)
        else:
            log.info("%s process: metrics on http://%s:%d/metrics", role,
                     settings.metrics_bind, settings.metrics_port)
    limit_client_logs()  # a broker outage must not write megabytes of retry lines a second
    child = None
    if role == "score" and not passthrough and settings.label_process == "child":
        child = LabelChild(settings, loglevel)
        child.start()
        worker_app.app.timer(1.0)(_watching(child))
    deadline = StopDeadline(settings.stop_timeout_s, f"this {role} process",
                            before_exit=child.kill if child is not None else lambda: None)

    def stopping() -> None:
        deadline.arm()
        if child is not None:
            child.terminate()  # both stop at once: the label process's stop waits as long

    settle_heap()  # the imports and loaded models are never walked by the collector again
    worker = _Worker(worker_app.app, role=role, on_stopping=stopping, loglevel=loglevel,
                     quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        if child is not None:
            child.stop()
        deadline.cancel()


class _Worker(faust.Worker):
    """faust's worker, which says when its stop begins (on a signal or a crash alike)."""

    def __init__(self, app: faust.App, *, role: str, on_stopping, **kwargs) -> None:
        self._role = role
        self._on_stopping = on_stopping
        super().__init__(app, **kwargs)

    async def on_execute(self) -> None:  # logging is set up by now (mode's on_first_start)
        await super().on_execute()
        threaded = getattr(self.app, "consumer_in_thread", True)
        self.log.info("%s process: GIL switch interval %g ms; Kafka consumer %s", self._role,
                      sys.getswitchinterval() * 1000,
                      "in faust's thread" if threaded else "on the event loop")

    async def on_stop(self) -> None:
        self._on_stopping()  # before any service is stopped: mode calls on_stop first
        await super().on_stop()


def _watching(child: LabelChild):
    async def watch_label_process() -> None:
        child.watch()
    return watch_label_process
