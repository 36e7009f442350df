"""The event-time guard: one odd clock cannot move a partition's watermark far."""

from fraudstream.stream.event_time import EventTimeGuard

DAY = 86400.0
NOW = 1_790_000_000.0  # the wall clock in these tests
REPLAY = 1_767_225_600.0  # 2026-01-01: a historical replay, months behind the wall clock


def _warm(guard: EventTimeGuard, partition: int, start: float, n: int = 30) -> float:
    for i in range(n):
        assert guard.admit(partition, start + i * 60.0, NOW) is None
    return start + (n - 1) * 60.0


def test_a_far_future_record_is_refused_and_does_not_move_the_watermark():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    mark = _warm(guard, 0, REPLAY)
    error = guard.admit(0, 7_000_000_000.0, NOW)  # the year 2191
    assert error and "FRAUDSTREAM_MAX_FUTURE_SKEW_S" in error
    assert guard.watermark(0) == mark
    # even a wall-clock-plausible time is refused while a replay's watermark is trusted
    assert guard.admit(0, NOW, NOW) is not None
    assert guard.admit(0, mark + 3600.0, NOW) is None  # normal progress goes on


def test_a_far_past_record_is_refused_once_the_watermark_is_trusted():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    mark = _warm(guard, 0, REPLAY)
    error = guard.admit(0, mark - 41 * DAY, NOW)
    assert error and "FRAUDSTREAM_MAX_PAST_SKEW_S" in error
    assert guard.admit(0, mark - 39 * DAY, NOW) is None  # late, within bounds: admitted
    assert guard.watermark(0) == mark


def test_the_first_record_is_checked_against_the_wall_clock():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    assert guard.admit(1, NOW + 2 * DAY, NOW) is not None
    assert guard.watermark(1) is None
    assert guard.admit(1, REPLAY, NOW) is None  # a replay of history is admitted


def test_an_odd_first_record_cannot_make_every_later_one_look_far_future():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    assert guard.admit(2, 0.0, NOW) is None  # 1970, before the watermark is trusted
    _warm(guard, 2, REPLAY)  # the real stream is admitted and becomes the reference
    assert guard.admit(2, 0.0, NOW) is not None


def test_a_producer_back_after_a_long_outage_is_admitted_on_the_wall_clock():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    mark = _warm(guard, 3, NOW - 5 * DAY)
    later = NOW + 5 * DAY  # five days of wall-clock silence
    assert guard.admit(3, later - 60.0, later) is None
    assert guard.watermark(3) == later - 60.0 > mark


def test_revoked_partitions_forget_their_watermark():
    guard = EventTimeGuard(max_future_s=DAY, max_past_s=40 * DAY)
    _warm(guard, 4, REPLAY)
    guard.forget({4})
    assert guard.watermark(4) is None
    assert guard.admit(4, REPLAY + 10 * DAY, NOW) is None  # another worker moved it on
