"""The trainer's loop with in-memory fakes: which trigger starts a cycle, requests from the
control topic, one cycle at a time, a hung cycle, and the loop itself from start to stop.

No broker and no model: the window reader, the control consumer and the cycle are fakes or
stubs; the cycle itself is tested in test_trainer_ledger.py and the broker scenarios in
test_trainer_e2e.py and test_trainer_resilience.py.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from fraudstream.stream import publisher, trainer as trainer_module
from fraudstream.stream.config import load_settings
from fraudstream.stream.trainer import RetrainRequests, Trainer, _Cycle, pick_trigger

NOW = 1_790_000_000.0


@pytest.mark.parametrize("requests, new_frauds, now, expected", [
    (0, 0, NOW, None),                      # nothing due yet
    (0, 0, NOW + 600, "schedule"),          # the schedule is due
    (0, 50, NOW, "new_frauds"),             # enough new frauds before the schedule
    (0, 49, NOW, None),
    (2, 0, NOW, "request"),                 # a request starts one now
    (1, 500, NOW + 600, "request"),         # and comes first when all hold
    (0, 500, NOW + 600, "new_frauds"),      # new frauds before the schedule
])
def test_pick_trigger(requests, new_frauds, now, expected):
    assert pick_trigger(requests, new_frauds, 50, now, next_due=NOW + 600) == expected


def test_retrain_requests_name_the_first_few_and_count_the_rest(caplog):
    caplog.set_level("INFO", logger="fraudstream.trainer")
    requests = RetrainRequests(named=2)
    assert requests.take() is None
    for i in range(5):
        requests.add({"request_id": f"r{i}", "reason": "drift\nalert"})
    assert requests.count == 5
    assert requests.take() == "r0, r1 and 3 more"
    assert requests.count == 0 and requests.take() is None
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["retrain requested (r0): drift\\nalert",
                      "retrain requested (r1): drift\\nalert"]


# -- the trainer on fakes ---------------------------------------------------------------------


class FakeControl:
    """The control topic's consumer: each poll hands out the next batch of values."""

    def __init__(self, *batches) -> None:
        self.batches = list(batches)

    def poll(self, timeout_ms=0):
        if not self.batches:
            return {}
        return {"control-0": [SimpleNamespace(value=v) for v in self.batches.pop(0)]}


def request(request_id: str) -> bytes:
    return json.dumps({"command": "retrain", "request_id": request_id, "at": 1.0}).encode()


@pytest.fixture
def trainer(tmp_path) -> Trainer:
    t = Trainer(load_settings(model_registry=tmp_path / "registry", trainer_metrics_port=0,
                              trainer_interval_s=600, trainer_new_frauds_trigger=50,
                              trainer_cycle_timeout_s=60),
                metrics_registry=CollectorRegistry())
    t.next_due = NOW + 600
    t.started: list[str] = []
    t.start_cycle = t.started.append  # the cycle itself is not what these tests are about
    return t


def metric(t: Trainer, name: str, **labels) -> float | None:
    return t.metrics.registry.get_sample_value(name, labels or None)


def test_requests_on_the_control_topic_start_one_cycle(trainer):
    trainer.read_control(FakeControl([request("a"), b"{not json", request("b")]))
    assert trainer.requests.count == 2
    assert metric(trainer, "fraudstream_trainer_control_refused_total",
                  topic="control", reason="malformed") == 1
    assert trainer.maybe_start(NOW) == "request"
    assert trainer.started == ["request"] and trainer.requests.count == 0
    assert trainer.next_due == NOW + 600  # the schedule counts from the cycle just started
    assert trainer.maybe_start(NOW + 1) is None


def test_enough_new_frauds_start_a_cycle_before_the_schedule(trainer):
    trainer.reader.new_frauds = 49
    assert trainer.maybe_start(NOW) is None
    trainer.reader.new_frauds = 50
    assert trainer.maybe_start(NOW) == "new_frauds"


def test_the_schedule_starts_a_cycle_when_due_and_moves_on(trainer):
    assert trainer.maybe_start(NOW + 599) is None
    assert trainer.maybe_start(NOW + 600) == "schedule"
    assert trainer.next_due == NOW + 1200


def test_no_cycle_starts_while_one_runs(trainer):
    release = threading.Event()
    trainer.cycle = _Cycle(threading.Thread(target=release.wait), NOW, "schedule")
    trainer.cycle.thread.start()
    try:
        trainer.requests.add({"request_id": "x"})
        assert trainer.maybe_start(NOW + 10_000) is None
        assert trainer.requests.count == 1  # kept for when the cycle is done
        assert not trainer.hung(NOW + 60 + 120)
        assert trainer.hung(NOW + 60 + 121)  # past its limit and the grace
        assert metric(trainer, "fraudstream_trainer_cycles_total",
                      outcome="failed", synthetic="none") == 1
    finally:
        release.set()
        trainer.cycle.thread.join()
    assert not trainer.hung(NOW + 10_000)  # a finished cycle is never hung
    assert trainer.maybe_start(NOW + 10_000) == "request"


def test_start_cycle_takes_the_window_and_counts_the_trigger(tmp_path, monkeypatch):
    t = Trainer(load_settings(model_registry=tmp_path / "registry", trainer_metrics_port=0),
                metrics_registry=CollectorRegistry())
    taken = []

    def run_cycle(cycle, data):
        taken.append((cycle.trigger, len(data)))
        cycle.outcome = "skipped"

    monkeypatch.setattr(t, "_run_cycle", run_cycle)
    t.reader.new_frauds = 7
    t.start_cycle("request")
    t.cycle.thread.join(timeout=10)
    assert taken == [("request", 0)] and t.cycle.outcome == "skipped"
    assert t.reader.new_frauds == 0
    assert metric(t, "fraudstream_trainer_triggers_total", trigger="request") == 1


class FakeReader:
    """The window reader: counts polls, and stops the trainer after ``polls`` of them."""

    def __init__(self, stop: threading.Event, polls: int) -> None:
        self.stop, self.polls, self.n, self.new_frauds = stop, polls, 0, 0
        self.rebuilt = False

    def rebuild(self):
        self.rebuilt = True

    def poll(self, timeout_ms):
        self.n += 1
        if self.n >= self.polls:
            self.stop.set()
        return 0

    def gauges(self):
        pass


def test_the_loop_reconciles_rebuilds_then_serves_requests_until_stopped(trainer, monkeypatch):
    control = FakeControl([], [request("a")])
    monkeypatch.setattr(trainer_module, "tail_consumer", lambda settings, topic, client: control)
    monkeypatch.setattr(publisher, "latest_announcements",
                        lambda settings, on_refused=None: ({}, 0))
    trainer.reader = FakeReader(trainer.stop, polls=3)
    started = time.time()
    assert trainer.run() == 0
    assert trainer.reader.rebuilt and trainer.reader.n == 3
    assert trainer.started == ["request"]
    assert trainer.next_due >= started + 600
