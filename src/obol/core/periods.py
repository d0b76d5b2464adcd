"""Billing periods, pure date math: no database, no clock.

A `Cycle` says how an account's time is cut into periods: every week, month, quarter or year,
starting on a cycle day. Periods are half-open, `[start, end)`: `end` is the first day of the next
period, so consecutive periods share a boundary and a day belongs to exactly one of them.

- month: from the cycle day of each month. A cycle day the month does not have falls on its last
  day: with day 31 the periods start on 31 Jan, 28 Feb (29 in a leap year), 31 Mar, 30 Apr, ...
  and with day 30 on 30 Jan, 28 Feb, 30 Mar: the day comes back as soon as the month has it.
- quarter: the same, every third month counted from the cycle's `month` (default January:
  January, April, July, October).
- year: the same, in the cycle's `month` of every year (default January).
- week: seven days from the cycle's `weekday` (0 Monday ... 6 Sunday, default Monday); a day of
  the month means nothing for weeks, so the cycle day is not used.

Proration counts days: a part of a period is worth `days in the part / days in the period` of it
(`Period.prorate`). Rounding the result is the caller's, at a named place (`core/rounding.py`).
"""
from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from functools import lru_cache

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT


class Frequency(StrEnum):
    """How often a period repeats; the same words as the catalog's `period`."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_MONTHS = {Frequency.MONTH: 1, Frequency.QUARTER: 3, Frequency.YEAR: 12}
_ONE_DAY = timedelta(days=1)
# A day count rarely divides evenly (20 of 30 days): the quotient keeps 60 digits, and the one
# rounding happens where the caller names it.
_QUOTIENT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow])


@dataclass(frozen=True, order=True)
class Period:
    """The days `start` (included) to `end` (excluded)."""

    start: date
    end: date

    def __post_init__(self):
        if self.end <= self.start:
            raise ValueError(f"a period ends after it starts, not {self.start} to {self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        return self.end - _ONE_DAY

    def __contains__(self, day: date) -> bool:
        return self.start <= day < self.end

    def overlap_days(self, start: date, end: date | None) -> int:
        """How many days of `[start, end)` (end None: open) fall in this period."""
        first = max(self.start, start)
        last = self.end if end is None else min(self.end, end)
        return max((last - first).days, 0)

    def prorate(self, value: Decimal, days: int) -> Decimal:
        """`value` for `days` of this period: value x days / period days. Exact when the quotient
        is (300 x 20 / 30 = 200); otherwise (20 / 3) kept to 60 significant digits, for the caller
        to round once at a named place."""
        if not 0 <= days <= self.days:
            raise ValueError(f"{days} days is not a part of {self}, which has {self.days}")
        return _QUOTIENT.divide(EXACT.multiply(value, Decimal(days)), Decimal(self.days))

    def __str__(self) -> str:
        """For people: first and last day, both included."""
        return f"{self.start.isoformat()} – {self.last_day.isoformat()}"


@lru_cache(maxsize=8192)  # pure, and asked for the same months again and again by the mass processes
def cycle_date(year: int, month: int, cycle_day: int) -> date:
    """The cycle day in a month, or the month's last day when it is shorter (31 -> 28 Feb)."""
    return date(year, month, min(cycle_day, calendar.monthrange(year, month)[1]))


def _month_start(index: int, cycle_day: int) -> date:
    """The cycle date of month number `index` (year * 12 + month - 1)."""
    year, month0 = divmod(index, 12)
    return cycle_date(year, month0 + 1, cycle_day)


@dataclass(frozen=True)
class Cycle:
    """How periods repeat: `frequency`, starting on `day` (1-31; months, quarters, years), in
    `month` (1-12; the first month of a quarterly or yearly cycle) or on `weekday` (weeks)."""

    frequency: Frequency
    day: int = 1
    month: int = 1
    weekday: int = 0

    def __post_init__(self):
        try:
            object.__setattr__(self, "frequency", Frequency(self.frequency))
        except ValueError:
            raise ValidationFailed(f"frequency: {self.frequency!r} is not one of week, month, quarter, year",
                                   field="frequency") from None
        if not 1 <= self.day <= 31:
            raise ValidationFailed(f"day: a cycle day is 1 to 31, not {self.day}", field="day")
        if not 1 <= self.month <= 12:
            raise ValidationFailed(f"month: a cycle month is 1 to 12, not {self.month}", field="month")
        if not 0 <= self.weekday <= 6:
            raise ValidationFailed(f"weekday: 0 (Monday) to 6 (Sunday), not {self.weekday}", field="weekday")

    def period_containing(self, day: date) -> Period:
        if self.frequency == Frequency.WEEK:
            start = day - timedelta(days=(day.weekday() - self.weekday) % 7)
            return Period(start, start + timedelta(days=7))
        step = _MONTHS[self.frequency]
        index = day.year * 12 + day.month - 1
        index -= (index - (self.month - 1)) % step  # the latest month a period may start in
        if _month_start(index, self.day) > day:  # e.g. 10 March with cycle day 15: February's period
            index -= step
        return Period(_month_start(index, self.day), _month_start(index + step, self.day))

    def next(self, period: Period) -> Period:
        """The period after `period` (which must be one of this cycle's)."""
        return self.period_containing(period.end)

    def previous(self, period: Period) -> Period:
        """The period before `period` (which must be one of this cycle's)."""
        return self.period_containing(period.start - _ONE_DAY)

    def periods(self, start: date, end: date) -> Iterator[Period]:
        """Every period with a day in `[start, end)`, in order (the first may begin before
        `start`, the last may end after `end`)."""
        if end <= start:
            return
        period = self.period_containing(start)
        while period.start < end:
            yield period
            period = self.next(period)
