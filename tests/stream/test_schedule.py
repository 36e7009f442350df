"""When the trainer's next cycle is due: cron parsing, next_after, intervals."""

import calendar
import random
import time
from datetime import datetime, timezone

import pytest

from fraudstream.stream.schedule import Cron, Schedule


def ts(text: str) -> float:
    """``"2026-01-01 10:07:30"`` (UTC) as epoch seconds."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S %a")


def fire_times(expression: str, start: str, n: int) -> list[str]:
    cron, t, out = Cron.parse(expression), ts(start), []
    for _ in range(n):
        t = cron.next_after(t)
        out.append(iso(t))
    return out


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("expression, field", [
    ("60 * * * *", "minute"),
    ("-1 * * * *", "minute"),
    ("* 24 * * *", "hour"),
    ("* x * * *", "hour"),
    ("* * 0 * *", "day of month"),
    ("* * 32 * *", "day of month"),
    ("* * * 13 *", "month"),
    ("* * * JAN *", "month"),
    ("* * * * 8", "day of week"),
    ("* * * * MON", "day of week"),
    ("*/0 * * * *", "minute"),
    ("5-1 * * * *", "minute"),
    ("1,,2 * * * *", "minute"),
    ("* 1-2-3 * * *", "hour"),
    ("* * * * 1/x", "day of week"),
])
def test_a_bad_field_is_named(expression, field):
    with pytest.raises(ValueError, match=f"^cron {field}: "):
        Cron.parse(expression)


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * *", "@daily"])
def test_five_fields_are_needed(expression):
    with pytest.raises(ValueError, match="cron needs 5 fields"):
        Cron.parse(expression)


def test_fields_parse_to_sets():
    c = Cron.parse("*/15 9-17/4 1,15 */6 1-5")
    assert c.minutes == {0, 15, 30, 45}
    assert c.hours == {9, 13, 17}
    assert c.days == {1, 15} and c.months == {1, 7}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert not c.any_day and not c.any_weekday
    assert Cron.parse("5/20 * * * *").minutes == {5, 25, 45}  # a start with a step runs to the end
    star = Cron.parse("0 0 * * *")
    assert star.any_day and star.any_weekday and star.weekdays == set(range(7))


def test_sunday_is_both_0_and_7():
    assert Cron.parse("0 0 * * 0").weekdays == Cron.parse("0 0 * * 7").weekdays == {0}
    assert Cron.parse("0 0 * * 5-7").weekdays == {5, 6, 0}
    assert Cron.parse("0 0 * * 0-7").weekdays == set(range(7))
    for expression in ("0 12 * * 0", "0 12 * * 7"):
        assert fire_times(expression, "2026-01-01 00:00:00", 2) == [
            "2026-01-04 12:00:00 Sun", "2026-01-11 12:00:00 Sun"]


# -- next_after ----------------------------------------------------------------------------------


def test_every_quarter_hour():
    cron = Cron.parse("*/15 * * * *")
    assert iso(cron.next_after(ts("2026-01-01 10:07:30"))) == "2026-01-01 10:15:00 Thu"
    assert iso(cron.next_after(ts("2026-01-01 10:15:00"))) == "2026-01-01 10:30:00 Thu"  # strictly after
    assert iso(cron.next_after(ts("2026-01-01 10:15:00") + 0.5)) == "2026-01-01 10:30:00 Thu"
    assert iso(cron.next_after(ts("2026-01-01 10:14:59") + 0.999)) == "2026-01-01 10:15:00 Thu"
    assert iso(cron.next_after(ts("2026-12-31 23:59:00"))) == "2027-01-01 00:00:00 Fri"


def test_a_specific_weekday_and_time():
    assert fire_times("30 9 * * 1", "2026-01-01 12:00:00", 3) == [
        "2026-01-05 09:30:00 Mon", "2026-01-12 09:30:00 Mon", "2026-01-19 09:30:00 Mon"]
    # on the day itself: later today if the time has not passed, else next week
    assert fire_times("30 9 * * 1", "2026-01-05 09:29:00", 1) == ["2026-01-05 09:30:00 Mon"]
    assert fire_times("30 9 * * 1", "2026-01-05 09:30:00", 1) == ["2026-01-12 09:30:00 Mon"]


def test_hours_and_minutes_lists():
    assert fire_times("0,30 8,20 * * *", "2026-01-01 08:15:00", 4) == [
        "2026-01-01 08:30:00 Thu", "2026-01-01 20:00:00 Thu", "2026-01-01 20:30:00 Thu",
        "2026-01-02 08:00:00 Fri"]


def test_month_jumps():
    assert fire_times("0 0 1 */3 *", "2026-02-15 00:00:00", 3) == [
        "2026-04-01 00:00:00 Wed", "2026-07-01 00:00:00 Wed", "2026-10-01 00:00:00 Thu"]
    assert fire_times("0 12 15 6 *", "2026-07-01 00:00:00", 1) == ["2027-06-15 12:00:00 Tue"]
    assert fire_times("0 0 1 1 *", "2026-12-31 23:59:00", 1) == ["2027-01-01 00:00:00 Fri"]
    assert fire_times("0 0 31 * *", "2026-01-31 00:00:00", 2) == [
        "2026-03-31 00:00:00 Tue", "2026-05-31 00:00:00 Sun"]  # months without a 31st skipped


def test_february_29th_waits_for_a_leap_year():
    assert fire_times("0 0 29 2 *", "2026-01-01 00:00:00", 1) == ["2028-02-29 00:00:00 Tue"]


def test_both_day_fields_restricted_means_either():
    # the 13th OR any Friday (Vixie cron), not only Friday the 13th
    assert fire_times("0 0 13 * 5", "2026-01-01 00:00:00", 4) == [
        "2026-01-02 00:00:00 Fri", "2026-01-09 00:00:00 Fri", "2026-01-13 00:00:00 Tue",
        "2026-01-16 00:00:00 Fri"]


def test_one_day_field_restricted_means_that_field_alone():
    assert fire_times("0 0 * * 5", "2026-01-01 00:00:00", 2) == [
        "2026-01-02 00:00:00 Fri", "2026-01-09 00:00:00 Fri"]
    assert fire_times("0 0 13 * *", "2026-01-01 00:00:00", 2) == [
        "2026-01-13 00:00:00 Tue", "2026-02-13 00:00:00 Fri"]


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"])
def test_an_expression_that_never_fires_raises(expression):
    with pytest.raises(ValueError, match="never fires"):
        Cron.parse(expression).next_after(ts("2026-01-01 00:00:00"))


def test_an_impossible_day_still_fires_on_its_weekday():
    # "February 30th or a Monday": the weekday keeps it alive
    assert fire_times("0 0 30 2 1", "2026-01-01 00:00:00", 2) == [
        "2026-02-02 00:00:00 Mon", "2026-02-09 00:00:00 Mon"]


@pytest.mark.parametrize("expression", [
    "*/15 * * * *", "7 */5 * * *", "0 9 * * 1-5", "0 0 13 * 5", "45 23 28-31 * *",
    "0 6 1,15 2,8 *", "10 10 * 3 0"])
def test_next_after_agrees_with_a_minute_by_minute_search(expression):
    cron, rng = Cron.parse(expression), random.Random(expression)
    for _ in range(3):
        start = ts("2026-01-01 00:00:00") + rng.uniform(0, 365 * 86400)
        t = (int(start) // 60 + 1) * 60
        while not cron.matches(t):
            t += 60
        assert cron.next_after(start) == t, (expression, iso(start))


def test_matches_reads_utc():
    cron = Cron.parse("30 9 * * 1")
    assert cron.matches(ts("2026-01-05 09:30:00")) and cron.matches(ts("2026-01-05 09:30:59"))
    assert not cron.matches(ts("2026-01-05 09:31:00")) and not cron.matches(ts("2026-01-06 09:30:00"))


# -- Schedule ------------------------------------------------------------------------------------


def test_an_interval_is_counted_from_the_last_start():
    s = Schedule(3600)
    assert s.cron is None
    assert s.next_due(last_start=1000.0, now=1500.0) == 4600.0
    assert s.next_due(last_start=1000.0, now=99_999.0) == 4600.0  # overdue: due at once
    assert s.nominal_interval() == 3600 and s.describe() == "every 3600 s"


def test_a_cron_schedule_is_due_at_the_next_cron_time():
    s = Schedule(3600, cron="*/15 * * * *")
    assert s.describe() == "cron '*/15 * * * *' (UTC)"
    # just ran at 10:15: next at 10:30
    assert iso(s.next_due(ts("2026-01-01 10:15:00"), ts("2026-01-01 10:15:40"))) == "2026-01-01 10:30:00 Thu"
    # down since 08:00: the missed times are not replayed, the next one is waited for
    assert iso(s.next_due(ts("2026-01-01 08:00:00"), ts("2026-01-01 10:16:10"))) == "2026-01-01 10:30:00 Thu"
    # a time missed by under a minute (a slow restart) is still run
    assert iso(s.next_due(ts("2026-01-01 10:00:00"), ts("2026-01-01 10:15:40"))) == "2026-01-01 10:15:00 Thu"


def test_a_cron_schedule_ignores_the_interval():
    assert Schedule(5, cron="0 * * * *").next_due(ts("2026-01-01 10:00:00"), ts("2026-01-01 10:00:01")) \
        == ts("2026-01-01 11:00:00")


def test_a_bad_cron_fails_when_the_schedule_is_built():
    with pytest.raises(ValueError, match="cron hour"):
        Schedule(60, cron="0 25 * * *")
    assert Schedule(60, cron="").cron is None


def test_nominal_interval_of_a_cron_is_the_gap_between_its_next_two_times():
    assert Schedule(1, cron="*/15 * * * *").nominal_interval(ts("2026-01-01 10:07:00")) == 900
    assert Schedule(1, cron="*/15 * * * *").nominal_interval() == 900
    assert Schedule(1, cron="0 * * * *").nominal_interval(ts("2026-01-01 10:07:00")) == 3600
    weekdays = Schedule(1, cron="0 9 * * 1-5")
    assert weekdays.nominal_interval(ts("2026-01-05 10:00:00")) == 86400  # Tue 9:00 -> Wed 9:00
    assert weekdays.nominal_interval(ts("2026-01-01 10:00:00")) == 3 * 86400  # Fri -> Mon


def test_a_stepped_day_field_counts_as_unrestricted_as_in_vixie_cron():
    # "*/2" in day-of-month starts with "*": the fields combine with AND, so only odd days
    # that are Mondays fire (not every odd day and every Monday).
    cron = Cron.parse("0 0 */2 * 1")
    fired = time.gmtime(cron.next_after(calendar.timegm((2026, 11, 22, 0, 0, 0))))
    assert fired.tm_wday == 0 and fired.tm_mday % 2 == 1
