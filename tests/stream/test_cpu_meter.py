"""The bench's CPU meter reads real processes from /proc: a busy process group's leader and
its child apart, and a child that has exited keeps what it spent."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from fraudstream.stream.cpu_meter import (
    CpuMeter, busy_cores, per_transaction, process_cpu_s, ratio_bound,
)

# A leader that starts a busy child in its own process group, then busies itself.
_FAMILY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time\\nend = time.time() + float(__import__('sys').argv[1])\\n"
    "while time.time() < end: pass", sys.argv[1]])
end = time.time() + float(sys.argv[2])
while time.time() < end:
    pass
child.wait()
time.sleep(30)
"""


def test_the_leader_and_its_child_are_read_apart_and_an_exited_child_keeps_its_cpu():
    leader = subprocess.Popen([sys.executable, "-c", _FAMILY, "1.0", "0.3"],
                              start_new_session=True)
    try:
        meter = CpuMeter(leader.pid, broker_pid=None)
        start = meter.read(time.monotonic())
        time.sleep(0.6)  # the child busy, the leader done being busy
        middle = meter.read(time.monotonic())
        assert middle.labels > start.labels  # the child, while it runs
        time.sleep(1.2)  # the child has exited by now
        end = meter.read(time.monotonic())
        spent = end.minus(start)
        # busy loops for 1.0 s and 0.3 s, read from somewhat after both started
        assert 0.3 <= spent["labels"] <= 1.2
        assert 0.0 <= spent["scoring"] <= 0.5
        assert spent["labels"] > spent["scoring"]
        assert end.labels >= middle.labels  # its last reading is kept after it exits
        assert spent["total"] == pytest.approx(
            spent["scoring"] + spent["labels"] + spent["broker"] + spent["harness"])
        assert spent["wall"] == pytest.approx(end.at - start.at)
    finally:
        os.killpg(leader.pid, 9)
        leader.wait()


def test_a_process_that_is_gone_reads_as_none_and_this_one_as_some_cpu():
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert process_cpu_s(done.pid) is None
    assert process_cpu_s(os.getpid()) > 0


def test_the_broker_is_read_where_it_is_given_and_not_counted_where_it_is_not():
    spin = "import time\nend = time.time() + 0.8\nwhile time.time() < end: pass"
    broker = subprocess.Popen([sys.executable, "-c", spin])
    try:
        meters = CpuMeter(os.getpid(), broker_pid=broker.pid), CpuMeter(os.getpid(), None)
        starts = [m.read(time.monotonic()) for m in meters]
        time.sleep(0.5)
        here, elsewhere = (m.read(time.monotonic()).minus(s) for m, s in zip(meters, starts))
        assert 0.2 <= here["broker"] <= 0.7
        assert elsewhere["broker"] == 0.0
    finally:
        broker.wait()


def test_cpu_a_transaction_and_the_ratio_it_allows():
    spent = {"scoring": 20.0, "labels": 22.0, "broker": 8.0, "harness": 0.5, "total": 50.5,
             "wall": 30.0}
    cpu = per_transaction(spent, 100_000)
    assert cpu == {"scoring_us": 200.0, "labels_us": 220.0, "broker_us": 80.0,
                   "harness_us": 5.0, "total_us": 505.0, "busy_cores": 1.68, "seconds": 30.0}
    # two cores at 505 us a transaction: 3,960 tx/s at most, against a 14,000 tx/s passthrough
    assert ratio_bound(cpu, 14_000.0, cores=2) == 0.283
    assert ratio_bound(cpu, 14_000.0, cores=4) == 0.566
    assert ratio_bound(None, 14_000.0, cores=2) is None
    assert ratio_bound(cpu, float("nan"), cores=2) is None


def test_busy_cores_over_a_window():
    spent = {"scoring": 6.0, "labels": 4.5, "broker": 3.0, "harness": 0.3, "total": 13.8,
             "wall": 10.0}
    assert busy_cores(spent) == {"scoring": 0.6, "labels": 0.45, "broker": 0.3, "harness": 0.03,
                                 "total": 1.38}
    assert busy_cores({**spent, "wall": 0.0}) is None
