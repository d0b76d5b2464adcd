"""Billing periods: cycle days, short months, weeks, quarters, years and day counts (pure date math)."""
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obol.core.errors import ValidationFailed
from obol.core.periods import Cycle, Period, cycle_date

D = date


def monthly(day):
    return Cycle("month", day=day)


@pytest.mark.parametrize(("day", "start", "end"), [
    (D(2026, 3, 1), D(2026, 3, 1), D(2026, 4, 1)),
    (D(2026, 3, 31), D(2026, 3, 1), D(2026, 4, 1)),
    (D(2026, 12, 31), D(2026, 12, 1), D(2027, 1, 1)),
])
def test_cycle_day_1_is_the_calendar_month(day, start, end):
    assert monthly(1).period_containing(day) == Period(start, end)


@pytest.mark.parametrize(("day", "start", "end"), [
    (D(2026, 3, 15), D(2026, 3, 15), D(2026, 4, 15)),  # the cycle day itself starts a period
    (D(2026, 3, 14), D(2026, 2, 15), D(2026, 3, 15)),  # the day before belongs to the previous one
    (D(2026, 1, 3), D(2025, 12, 15), D(2026, 1, 15)),  # across the year end
])
def test_cycle_day_15(day, start, end):
    assert monthly(15).period_containing(day) == Period(start, end)


@pytest.mark.parametrize(("day", "start", "end"), [
    (D(2026, 2, 15), D(2026, 1, 31), D(2026, 2, 28)),  # February has no 31st: its last day
    (D(2026, 2, 28), D(2026, 2, 28), D(2026, 3, 31)),
    (D(2026, 3, 30), D(2026, 2, 28), D(2026, 3, 31)),
    (D(2026, 4, 30), D(2026, 4, 30), D(2026, 5, 31)),  # April's last day is the 30th
    (D(2028, 2, 28), D(2028, 1, 31), D(2028, 2, 29)),  # leap year: the 29th
    (D(2028, 2, 29), D(2028, 2, 29), D(2028, 3, 31)),
])
def test_cycle_day_31_falls_on_the_last_day_of_shorter_months(day, start, end):
    assert monthly(31).period_containing(day) == Period(start, end)


def test_cycle_day_30_comes_back_after_february():
    cycle = monthly(30)
    february = cycle.period_containing(D(2026, 2, 28))
    assert february == Period(D(2026, 2, 28), D(2026, 3, 30))
    assert february.days == 30
    assert cycle.previous(february) == Period(D(2026, 1, 30), D(2026, 2, 28))
    assert cycle.next(february) == Period(D(2026, 3, 30), D(2026, 4, 30))


def test_days_of_a_month_period_with_cycle_day_31():
    cycle = monthly(31)
    assert [p.days for p in cycle.periods(D(2026, 1, 31), D(2026, 6, 1))] == [28, 31, 30, 31, 30]


def test_quarters_from_january_by_default():
    cycle = Cycle("quarter", day=1)
    assert cycle.period_containing(D(2026, 5, 20)) == Period(D(2026, 4, 1), D(2026, 7, 1))
    assert cycle.period_containing(D(2026, 12, 31)) == Period(D(2026, 10, 1), D(2027, 1, 1))
    assert cycle.period_containing(D(2026, 1, 1)).days == 90  # Jan + Feb + Mar 2026


def test_quarters_on_cycle_day_31_and_another_anchor_month():
    cycle = Cycle("quarter", day=31, month=2)  # quarters start in Feb, May, Aug, Nov
    assert cycle.period_containing(D(2026, 3, 1)) == Period(D(2026, 2, 28), D(2026, 5, 31))
    assert cycle.period_containing(D(2026, 2, 27)) == Period(D(2025, 11, 30), D(2026, 2, 28))


def test_years():
    assert Cycle("year").period_containing(D(2026, 7, 4)) == Period(D(2026, 1, 1), D(2027, 1, 1))
    leap = Cycle("year", day=29, month=2)
    assert leap.period_containing(D(2027, 1, 1)) == Period(D(2026, 2, 28), D(2027, 2, 28))
    assert leap.period_containing(D(2028, 3, 1)) == Period(D(2028, 2, 29), D(2029, 2, 28))
    assert leap.period_containing(D(2028, 3, 1)).days == 365


def test_weeks_start_on_the_cycle_weekday():
    monday = Cycle("week")
    assert monday.period_containing(D(2026, 1, 1)) == Period(D(2025, 12, 29), D(2026, 1, 5))  # a Thursday
    assert monday.period_containing(D(2025, 12, 29)).start == D(2025, 12, 29)
    sunday = Cycle("week", weekday=6)
    assert sunday.period_containing(D(2026, 1, 1)) == Period(D(2025, 12, 28), D(2026, 1, 4))
    assert Cycle("week", day=31).period_containing(D(2026, 1, 1)).days == 7  # the cycle day means nothing


def test_periods_between_two_days():
    spans = list(monthly(10).periods(D(2026, 1, 1), D(2026, 3, 10)))
    assert spans == [Period(D(2025, 12, 10), D(2026, 1, 10)), Period(D(2026, 1, 10), D(2026, 2, 10)),
                     Period(D(2026, 2, 10), D(2026, 3, 10))]
    assert list(monthly(10).periods(D(2026, 1, 1), D(2026, 1, 1))) == []


def test_day_counts_and_proration():
    april = monthly(1).period_containing(D(2026, 4, 11))
    assert (april.days, april.last_day, str(april)) == (30, D(2026, 4, 30), "2026-04-01 – 2026-04-30")
    assert D(2026, 4, 30) in april and D(2026, 5, 1) not in april
    assert april.overlap_days(D(2026, 4, 11), None) == 20  # active from the 11th: 20 of 30 days
    assert april.overlap_days(D(2026, 3, 1), D(2026, 4, 3)) == 2
    assert april.overlap_days(D(2026, 5, 1), None) == 0
    assert april.prorate(Decimal(300), 20) == Decimal(200)
    third = april.prorate(Decimal(100), 10)  # 33.33...: kept to 60 digits, rounded by the caller
    assert third == Decimal("33." + "3" * 58)
    with pytest.raises(ValueError):
        april.prorate(Decimal(300), 31)


def test_cycle_cycle_date_and_period_refuse_nonsense():
    assert cycle_date(2026, 2, 31) == D(2026, 2, 28)
    for bad in ({"frequency": "fortnight"}, {"frequency": "month", "day": 0},
                {"frequency": "month", "day": 32},
                {"frequency": "year", "month": 13}, {"frequency": "week", "weekday": 7}):
        with pytest.raises(ValidationFailed):
            Cycle(**bad)
    with pytest.raises(ValueError):
        Period(D(2026, 1, 2), D(2026, 1, 2))


cycles = st.builds(Cycle, frequency=st.sampled_from(["week", "month", "quarter", "year"]),
                   day=st.integers(1, 31), month=st.integers(1, 12), weekday=st.integers(0, 6))
days = st.dates(min_value=D(1990, 1, 1), max_value=D(2100, 12, 31))


@given(cycles, days)
def test_every_day_is_in_exactly_one_period_and_periods_follow_each_other(cycle, day):
    period = cycle.period_containing(day)
    assert day in period
    before, after = cycle.previous(period), cycle.next(period)
    assert before.end == period.start and after.start == period.end
    assert cycle.period_containing(period.last_day) == period
    assert cycle.period_containing(period.start) == period
    assert day - timedelta(days=period.days) not in period
    expected = {"week": {7}, "month": set(range(28, 32)), "quarter": set(range(89, 93)),
                "year": {365, 366}}[cycle.frequency]
    assert period.days in expected


@given(cycles, days)
def test_periods_start_on_the_cycle_day_or_the_last_day_of_a_shorter_month(cycle, day):
    start = cycle.period_containing(day).start
    if cycle.frequency == "week":
        assert start.weekday() == cycle.weekday
    else:
        assert start == cycle_date(start.year, start.month, cycle.day)
        assert (start.month - cycle.month) % {"month": 1, "quarter": 3, "year": 12}[cycle.frequency] == 0
