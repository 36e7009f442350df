"""The bound on a worker's stop (stream/stop_deadline.py); the whole process is tested in
tests/stream/test_platform_faults.py (a worker whose broker is gone)."""

from __future__ import annotations

import logging
import threading
import time

from fraudstream.stream.stop_deadline import EXIT_STOP_TIMEOUT, StopDeadline


class _Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.done.set()


def test_a_stop_past_its_deadline_exits_with_its_status_and_says_why(caplog):
    exits, hooked = _Exits(), []
    deadline = StopDeadline(0.2, "this score process", before_exit=lambda: hooked.append(1),
                            exit=exits)
    with caplog.at_level(logging.CRITICAL, logger="fraudstream.worker"):
        started = time.monotonic()
        deadline.arm()
        deadline.arm()  # a second stop request does not restart the clock or add a timer
        assert exits.done.wait(5)
    assert time.monotonic() - started >= 0.2
    assert exits.codes == [EXIT_STOP_TIMEOUT] and hooked == [1]
    assert "this score process did not stop in 0 s" in caplog.text


def test_a_stop_that_finishes_in_time_exits_normally():
    exits = _Exits()
    deadline = StopDeadline(0.2, "this score process", exit=exits)
    deadline.arm()
    deadline.cancel()
    assert not exits.done.wait(0.5)


def test_an_unarmed_deadline_never_fires_and_cancels_harmlessly():
    exits = _Exits()
    StopDeadline(0.01, "x", exit=exits).cancel()
    assert not exits.done.wait(0.1)


def test_the_exit_comes_even_when_the_hook_fails():
    exits = _Exits()

    def fails() -> None:
        raise RuntimeError("the label process is already gone")

    StopDeadline(0.05, "x", before_exit=fails, exit=exits).arm()
    assert exits.done.wait(5) and exits.codes == [EXIT_STOP_TIMEOUT]
