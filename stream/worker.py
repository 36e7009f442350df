"""``fraudstream worker``: run one scoring worker (several form one consumer group)."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from .app import build_app
from .config import Settings
from .gc_watch import settle_heap
from .logs import limit_client_logs
from .topics import create_topics

__all__ = ["run_worker"]


def run_worker(settings: Settings, *, passthrough: bool = False, loglevel: str = "info") -> None:
    """Start the metrics endpoint and the faust worker; returns when the worker stops."""
    create_topics(settings)  # idempotent; the internal topics must exist before subscribing
    worker_app = build_app(settings, passthrough=passthrough)
    if not passthrough:
        worker_app.follower.load_initial()  # a worker started later begins with the champion
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_bind,
                          registry=worker_app.metrics_registry)
        logging.getLogger("fraudstream.worker").info(
            "metrics on http://%s:%d/metrics", settings.metrics_bind, settings.metrics_port)
    limit_client_logs()  # a broker outage must not write megabytes of retry lines a second
    settle_heap()  # the imports and loaded models are never walked by the collector again
    worker = faust.Worker(worker_app.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
