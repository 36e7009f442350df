"""When the trainer's next scheduled cycle is due: a fixed interval or a cron expression.

Cron: the five classic fields (minute hour day-of-month month day-of-week, UTC) with ``*``,
lists, ranges and steps; day-of-week 0-7 with 0 and 7 both Sunday; when both day fields are
restricted a day matches either (as in Vixie cron). Names (``MON``, ``JAN``) are not accepted.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

__all__ = ["Cron", "Schedule"]

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))


def _parse_field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = lo, hi
            elif "-" in base:
                start, end = (int(x) for x in base.split("-", 1))
            else:
                start = int(base)
                end = hi if step_text else start
        except ValueError:
            raise ValueError(f"cron {name}: {part!r} is not a number, range, list or step") from None
        if step < 1 or not lo <= start <= end <= hi:
            raise ValueError(f"cron {name}: {part!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """``Cron.parse("*/15 * * * *")``; raises ``ValueError`` naming the bad field."""
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {expression!r}")
        sets = [_parse_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS)]
        weekdays = frozenset(d % 7 for d in sets[4])
        # As in Vixie cron, a day field starting with "*" (also "*/2") counts as unrestricted
        # when deciding whether day-of-month and day-of-week combine with AND or OR.
        return cls(expression, sets[0], sets[1], sets[2], sets[3], weekdays,
                   parts[2].startswith("*"), parts[4].startswith("*"))

    def _day_matches(self, t: time.struct_time) -> bool:
        day_ok = t.tm_mday in self.days
        weekday_ok = (t.tm_wday + 1) % 7 in self.weekdays  # tm_wday: Monday = 0
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def matches(self, ts: float) -> bool:
        t = time.gmtime(ts)
        return (t.tm_min in self.minutes and t.tm_hour in self.hours
                and t.tm_mon in self.months and self._day_matches(t))

    def next_after(self, ts: float) -> float:
        """The first matching minute strictly after ``ts`` (searches up to 9 years: a
        29 February can be 8 years away)."""
        minute = (int(ts) // 60 + 1) * 60
        limit = minute + 9 * 366 * 86400
        while minute < limit:
            t = time.gmtime(minute)
            if t.tm_mon not in self.months:  # jump to the next month
                year, month = t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1
                minute = calendar.timegm((year, month, 1, 0, 0, 0))
            elif not self._day_matches(t):  # to the next day
                minute = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
            elif t.tm_hour not in self.hours:  # to the next hour
                minute = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, 0, 0)) + 3600
            elif t.tm_min in self.minutes:
                return float(minute)
            else:
                minute += 60
        raise ValueError(f"cron {self.expression!r} never fires")


class Schedule:
    """Every ``interval_s`` after the last cycle started, or at the cron's times."""

    def __init__(self, interval_s: float, cron: str | None = None) -> None:
        self.interval_s = interval_s
        self.cron = Cron.parse(cron) if cron else None

    def next_due(self, last_start: float, now: float) -> float:
        if self.cron is not None:
            return self.cron.next_after(max(last_start, now - 60))
        return last_start + self.interval_s

    def nominal_interval(self, now: float | None = None) -> float:
        """Seconds between cycles: the interval, or the gap between the cron's next two times."""
        if self.cron is None:
            return self.interval_s
        first = self.cron.next_after(time.time() if now is None else now)
        return self.cron.next_after(first) - first

    def describe(self) -> str:
        return f"cron {self.cron.expression!r} (UTC)" if self.cron else f"every {self.interval_s:g} s"
