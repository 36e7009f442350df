"""Helpers for the deployment tests: PromQL metric names, declared metrics, doc anchors."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from fraudstream.stream.metrics import TrainerMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parent.parent

# PromQL words that look like names but are not metrics.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])\s*(\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out).

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{job="x"}[5m])) / on() b'))
    ['a_bucket', 'b']
    """
    text = _STRING.sub('""', expr)
    names = {m.group(1) for m in re.finditer(r'__name__\s*=\s*"([^"]+)"', expr)}
    text = _MATCHERS.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for m in _IDENT.finditer(text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def declared_metrics() -> set[str]:
    """Every sample name the worker and the trainer can export (stream/metrics.py)."""
    worker, trainer = CollectorRegistry(), CollectorRegistry()  # both export process usage
    WorkerMetrics(worker)
    TrainerMetrics(trainer)
    names: set[str] = set()
    for family in [*worker.collect(), *trainer.collect()]:
        if family.type == "info":
            names.add(family.name + "_info")
        elif family.type == "counter":
            names.update({family.name + "_total", family.name + "_created"})
        elif family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count", "_created"))
        else:
            names.add(family.name)
    return names


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lower case, punctuation dropped)."""
    anchors: set[str] = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors
