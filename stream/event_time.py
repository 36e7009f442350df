"""Event-time guard: one record with an odd clock cannot move a partition's watermark far.

Watermarks drive everything that forgets: card and terminal states evict history older than
their newest event, the label join expires pending snapshots when the other stream's
watermark passes their deadline, and the trainer's window evicts relative to its newest
example. A single transaction stamped in 2199 used to move all of them at once. The guard
admits an event time only within ``max_future_s`` ahead of its partition's watermark and
``max_past_s`` behind it; refused records are dead-lettered with reason ``ts_skew``.

A partition's watermark is trusted once ``min_support`` records have been admitted since it
was set from the wall clock; until then (a fresh worker, a partition just assigned, one
whose first record was odd) and whenever it has not moved for ``max_future_s`` of wall-clock
time (a producer that was down for days and resumes with current times), the wall clock is
the reference for the future side (``ts <= now + max_future_s``) and nothing is refused as
too old. Historical replays are thus admitted (their times lie in the past), a first record
from 1970 cannot make every later record look far-future, and live traffic after an outage
is not refused forever. The marks live in memory: a revoked partition's mark is dropped,
because another worker moved it on meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EventTimeGuard"]


@dataclass
class EventTimeGuard:
    """Per-partition event-time watermarks with bounded moves."""

    max_future_s: float
    max_past_s: float
    min_support: int = 20
    _marks: dict[int, float] = field(default_factory=dict)
    _moved_at: dict[int, float] = field(default_factory=dict)  # wall clock of the last move
    _support: dict[int, int] = field(default_factory=dict)  # records admitted on this mark

    def watermark(self, partition: int) -> float | None:
        return self._marks.get(partition)

    def trusted(self, partition: int, now: float) -> bool:
        """Whether ``partition``'s watermark, rather than the wall clock, is the reference."""
        return (self._support.get(partition, 0) >= self.min_support
                and now - self._moved_at.get(partition, now) <= self.max_future_s)

    def admit(self, partition: int, ts: float, now: float) -> str | None:
        """``None`` (the watermark advanced), or why ``ts`` is refused."""
        mark = self._marks.get(partition)
        if mark is not None and self.trusted(partition, now):
            if ts > mark + self.max_future_s:
                return (f"ts: {ts:.0f} is {ts - mark:.0f} s ahead of the partition's event-time "
                        f"watermark ({mark:.0f}); the limit is {self.max_future_s:.0f} s "
                        "(FRAUDSTREAM_MAX_FUTURE_SKEW_S)")
            if ts < mark - self.max_past_s:
                return (f"ts: {ts:.0f} is {mark - ts:.0f} s behind the partition's event-time "
                        f"watermark ({mark:.0f}); the limit is {self.max_past_s:.0f} s "
                        "(FRAUDSTREAM_MAX_PAST_SKEW_S)")
        elif ts > now + self.max_future_s:
            return (f"ts: {ts:.0f} is {ts - now:.0f} s ahead of the wall clock ({now:.0f}); "
                    f"the limit is {self.max_future_s:.0f} s (FRAUDSTREAM_MAX_FUTURE_SKEW_S)")
        if mark is None or ts > mark + self.max_future_s:
            self._support[partition] = 0  # a new reference, set from the wall clock's side
        if mark is None or ts > mark:
            self._marks[partition] = ts
            self._moved_at[partition] = now
        self._support[partition] = self._support.get(partition, 0) + 1
        return None

    def forget(self, partitions: set[int]) -> None:
        """Drop the marks of partitions this worker no longer owns."""
        for p in partitions:
            self._marks.pop(p, None)
            self._moved_at.pop(p, None)
            self._support.pop(p, None)
