"""The label process's supervision: restarted when it dies, never while stopping."""

from __future__ import annotations

import os
import sys
import time

import pytest
from fraudstream.stream.config import load_settings
from fraudstream.stream.label_child import LabelChild, follow_parent


class _Dying(LabelChild):
    """A label process that exits at once with status 3 (the supervision is what is tested)."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit(3)"]


def test_a_label_process_that_dies_is_restarted_with_backoff_and_not_after_stop() -> None:
    child = _Dying(load_settings(metrics_port=0), "info")
    child.start()
    first = child.proc
    first.wait(30)
    child.watch()  # died within a minute of its start: restart after the first backoff (1 s)
    assert child.proc is first and child.restarts == 1
    time.sleep(1.1)
    child.watch()
    assert child.proc is not first
    child.proc.wait(30)
    child.stop()
    child.watch()
    assert child.proc.returncode == 3  # not restarted once stopping


def test_a_label_process_whose_parent_is_gone_stops_at_once() -> None:
    with pytest.raises(SystemExit, match="is gone"):
        follow_parent(os.getppid() + 1 if os.getppid() != 1 else 2, 0)


def test_a_label_process_is_refused_where_the_scoring_workers_join_labels_themselves() -> None:
    from fraudstream.stream.worker import run_worker

    with pytest.raises(SystemExit, match="inline"):
        run_worker(load_settings(metrics_port=0, label_process="inline"), role="label")
