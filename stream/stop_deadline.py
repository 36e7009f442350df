"""A bound on how long a worker process takes to stop.

faust stops a worker's services one after the other, and some of them wait for the broker: the
consumer's stop (its last commit of the offsets it holds, and aiokafka's group coordinator
looking for the coordinator to leave the group) waits out mode's 60 s child timeout when the
broker is gone, and the label process, told to stop only once its scoring process has
stopped, waits as long again: 92 s measured for one worker whose broker had been stopped, past
any supervisor's grace period (compose gives 30 s), after which the kill comes with nothing in
the log to say why.

:class:`StopDeadline` is armed when the stop begins (a signal or a crash) and, if the process
is still there ``timeout_s`` later, says what happened and exits with :data:`EXIT_STOP_TIMEOUT`.
That is no less safe than the supervisor's SIGKILL it comes before: offsets not committed are
processed again after a restart, and the state folder and changelogs recover as after a kill
(tests/stream/test_platform_faults.py kills a busy worker).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from .logs import flush_logs_and_exit

__all__ = ["EXIT_STOP_TIMEOUT", "StopDeadline"]

log = logging.getLogger("fraudstream.worker")

#: Exit status of a process whose stop ran out of time (EX_TEMPFAIL: the broker is the usual
#: cause; starting again later is the remedy).
EXIT_STOP_TIMEOUT = 75


class StopDeadline:
    """Exits the process ``timeout_s`` after :meth:`arm` unless :meth:`cancel` came first."""

    def __init__(self, timeout_s: float, what: str, before_exit: Callable[[], None] = lambda: None,
                 exit: Callable[[int], None] | None = None) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.before_exit = before_exit
        self._exit = exit or flush_logs_and_exit
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        """Start the clock (again and again is harmless: the first call counts)."""
        with self._lock:
            if self._timer is None:
                # A thread, not the event loop: the loop may be what is stuck.
                self._timer = threading.Timer(self.timeout_s, self._expire)
                self._timer.daemon = True
                self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self) -> None:
        log.critical(
            "%s did not stop in %.0f s (is the broker reachable?); exiting with status %d "
            "without finishing its stop: offsets not committed are processed again after a "
            "restart, and its state recovers as after a kill (FRAUDSTREAM_STOP_TIMEOUT_S)",
            self.what, self.timeout_s, EXIT_STOP_TIMEOUT)
        try:
            self.before_exit()
        except Exception:  # the exit must come whatever the hook does
            log.exception("before the exit")
        self._exit(EXIT_STOP_TIMEOUT)
