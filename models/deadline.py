"""A wall-clock limit for long pure computations (the trainer's cycle), checked by them."""

from __future__ import annotations

import math
import time

__all__ = ["CycleTimeout", "Deadline"]


class CycleTimeout(Exception):
    """The cycle ran past its time limit."""


class Deadline:
    """A wall-clock limit checked between phases and inside the long fits."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.ends = math.inf if seconds is None else time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise CycleTimeout(f"the cycle ran past its {self.seconds:.0f} s limit")
