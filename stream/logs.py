"""Logging guards: no producer and no retrying client library may flood the log.

During a 20 s broker outage aiokafka logged 1,000-3,000 "Unable connect to node" / "Unable
to update metadata" lines a second (about 9 MB in 35 s, measured in the broker-restart
test), and a hostile producer can send a refused record per millisecond. Both go through a
:class:`Throttle`: the first of each key passes, then at most one every ``every_s`` seconds,
saying how many it held back. :class:`RepeatLimiter` applies it to library loggers (key:
logger and message template), :class:`RefusalLog` to refused records (key: topic and reason,
so one reason's flood does not hide another's first occurrence).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Hashable, NoReturn

__all__ = ["Throttle", "RepeatLimiter", "RefusalLog", "limit_client_logs", "printable",
           "flush_logs_and_exit"]


class Throttle:
    """At most one pass per ``every_s`` per key; counts what it holds back."""

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def admit(self, key: Hashable) -> int | None:
        """``None`` when ``key`` is held back, else how many were held back since its last pass."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class RepeatLimiter(logging.Filter):
    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.throttle = Throttle(every_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.throttle.admit((record.name, record.msg))
        if held:
            record.msg = (f"{record.msg} (and {held} more like it in the last "
                          f"{self.throttle.every_s:.0f} s)")
        return held is not None


def flush_logs_and_exit(status: int) -> NoReturn:
    """Exit now with ``status``, after the log lines saying why have reached their files.
    ``os._exit``, not ``sys.exit``: no finally block, atexit hook or other thread (a stuck
    stop, a commit) runs after it."""
    logging.shutdown()
    os._exit(status)


def limit_client_logs(prefixes: tuple[str, ...] = ("aiokafka", "kafka"),
                      every_s: float = 10.0) -> RepeatLimiter:
    """Attach one limiter to every logger of the Kafka client libraries (already imported)."""
    limiter = RepeatLimiter(every_s)
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in prefixes]
    for name in names + list(prefixes):
        logging.getLogger(name).addFilter(limiter)
    return limiter


def printable(text: Any, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, with newlines, control characters and lone
    surrogates escaped: safe to put in a log line whatever a record held."""
    text = text if isinstance(text, str) else str(text)
    cut = text[:limit]
    shown = cut.encode("unicode_escape", "backslashreplace").decode("ascii")
    return shown + ("..." if len(text) > limit else "")


class RefusalLog:
    """Logs refused records at most once per ``every_s`` per (topic, reason), and says how
    many it held back since."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.throttle = Throttle(every_s, clock)

    def refused(self, topic: str, reason: str, message: str, level: int = logging.WARNING,
                exc_info: BaseException | None = None) -> bool:
        """Log (or hold back) one refusal; True when it was logged. ``exc_info``: the
        exception behind it, when it was one (its traceback is logged)."""
        held = self.throttle.admit((topic, reason))
        if held is None:
            return False
        more = f"; {held} more refused for this reason since the last note" if held else ""
        self.logger.log(level, "%s [%s: %s%s]", printable(message, 500), topic, reason, more,
                        exc_info=exc_info)
        return True
