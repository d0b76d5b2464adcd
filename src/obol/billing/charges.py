"""Charge calculation, pure: (an account's billing events, what was already invoiced, the target
date) -> the invoice lines to add, repairs included. No database, no clock. Re-running it with its
own lines counted as invoiced proposes nothing: a bill run may always run again.

Billing events (what subscriptions, plans and quantities come to):
- `RecurringCharge`: one recurring or quantity charge of one subscription. It says how it is billed
  (in advance or in arrears), whether it prorates, its service periods (a `core.periods.Cycle`:
  the account's cycle day, the charge's period), and its spans: from `start` to `end` (excluded;
  None: open) a whole period costs `per_period` (price x quantity, or the quantity model's amount).
  There is one span per plan and quantity in force, for billable days only: a suspension the plan
  does not bill leaves a gap.
- `OneTimeCharge`: an amount due on a day (an activation or termination fee, an ad-hoc charge).

Invoiced items are the lines earlier invoices hold for these charges (not cancelled ones), in the
same `Line` shape with their `id`; a credit is a negative line whose `reverses` names the item it
corrects.

What is due by the target date:
- in advance: every service period that starts before the account's next bill date (`until`: the
  end of the account's bill period holding the target date, so a quarterly account billed on
  1 January pays January, February and March of a monthly charge; by default the day after the
  target: every period that starts on or before it);
- in arrears: every period that has ended by it, and the part of a period before the charge
  ended (a termination) once that end is reached.

For each due period and each price of a charge, the days the events bill are compared with the
days already invoiced:
- days missing are charged: per_period x days / days of the period;
- days invoiced but no longer billed (a back-dated termination, a plan or quantity change) are
  credited: the invoiced item's amount x days / its days, and the credit that reverses the last
  days of an item takes exactly what is left of it.

So a plan change on 21 November from 30.00 to 60.00, November billed in advance on the old plan,
gives a credit of 10.00 (old plan, 21-30 November) and a charge of 20.00 (new plan, same days).

Without proration a period is billed whole, at the span in force on its first billed day. A
change later in the period counts from the next period, and an ending credits nothing.

Usage aggregates are billed in arrears by `usage_charges`, and discounts apply to the lines by
`discounts`; `calculate` gives all of them.

Amounts are rounded once per line, at INVOICE_LINE, in the account's currency with the tenant's
rule (`core/rounding.py`, `lines.Rounder`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT
from obol.billing.discounts import DISCOUNT, Discount, discount_lines
from obol.billing.lines import Line, Rounder
from obol.billing.usage_charges import UsageAggregate, usage_lines
from obol.core.periods import Cycle, Period
from obol.core.rounding import RoundingRule

ADVANCE, ARREARS = "advance", "arrears"
RECURRING, ONE_TIME, ADJUSTMENT = "recurring", "one_time", "adjustment"
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Span:
    """From `start` to `end` (excluded; None: open) a whole period costs `per_period`. A span may
    carry its own terms (a plan version that bills differently): billing, proration, name, tax
    category, revenue account; empty ones are the charge's."""

    start: date
    end: date | None
    per_period: Decimal
    label: str = ""
    billing: str = ""
    prorate: bool | None = None
    name: str = ""
    tax_category: str = ""
    revenue_account: str = ""


@dataclass(frozen=True)
class RecurringCharge:
    subscription: str
    code: str
    name: str
    cycle: Cycle
    billing: str
    prorate: bool
    spans: tuple[Span, ...]
    tax_category: str = "standard"
    revenue_account: str = ""

    def __post_init__(self):
        if self.billing not in (ADVANCE, ARREARS):
            raise ValidationFailed(f"billing: {self.billing!r} is not advance or arrears", field="billing")
        for span in self.spans:
            if span.end is not None and span.end <= span.start:
                raise ValidationFailed(f"spans: {span.start} to {span.end} ends before it starts", field="spans")


@dataclass(frozen=True)
class OneTimeCharge:
    subscription: str
    code: str
    name: str
    on: date
    amount: Decimal
    tax_category: str = "standard"
    revenue_account: str = ""


# --- day intervals: sorted, disjoint [start, end) -------------------------------------------------

Intervals = list[tuple[date, date]]


def _merge(intervals: Iterable[tuple[date, date]]) -> Intervals:
    merged: Intervals = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(these: Intervals, those: Intervals) -> Intervals:
    out: Intervals = []
    for start, end in these:
        cursor = start
        for cut_start, cut_end in those:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                out.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def subtract_days(these: Iterable[tuple[date, date]], those: Iterable[tuple[date, date]]) -> Intervals:
    """The days of `these` not in `those` (each a list of [start, end) day intervals)."""
    return _subtract(_merge(these), _merge(those))


def _overlap(a: tuple[date, date], b: tuple[date, date]) -> tuple[date, date] | None:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return (start, end) if start < end else None


# --- recurring charges ----------------------------------------------------------------------------

def _span_days(span: Span, period: Period) -> tuple[date, date] | None:
    return _overlap((span.start, span.end or period.end), (period.start, period.end))


def _pieces(charge: RecurringCharge, period: Period) -> list[tuple[tuple[date, date], Span]]:
    """(days, span) of each span with days in `period`, the earliest first: the first sets the
    period's terms (the span in force on its first billed day)."""
    return sorted(((days, span) for span in charge.spans if (days := _span_days(span, period))),
                  key=lambda piece: piece[0][0])


def _billing(charge: RecurringCharge, span: Span | None) -> str:
    return (span.billing if span is not None and span.billing else None) or charge.billing


def _prorate(charge: RecurringCharge, span: Span | None) -> bool:
    return charge.prorate if span is None or span.prorate is None else span.prorate


def _due(charge: RecurringCharge, period: Period, first: Span | None, billed: Intervals, target: date,
         until: date) -> bool:
    if _billing(charge, first) == ADVANCE:
        return period.start < until
    if period.end <= target:
        return True
    # in arrears, a period the charge left early is due once it has left it
    return bool(billed) and billed[-1][1] < period.end and billed[-1][1] <= target


def _billed(charge: RecurringCharge, period: Period, pieces: list[tuple[tuple[date, date], Span]]
            ) -> dict[Decimal, Intervals]:
    """The days of `period` the events bill, by price."""
    if not pieces:
        return {}
    by_price: dict[Decimal, list] = defaultdict(list)
    first = pieces[0][1]
    if _prorate(charge, first):
        for days, span in pieces:
            by_price[span.per_period].append(days)
    else:
        by_price[first.per_period].append((period.start, period.end))
    return {price: _merge(days) for price, days in by_price.items()}


class _Ledger:
    """What the invoiced lines of one charge still cover, item by item. An item is a line that
    reverses nothing; a reversal (a repair credit, a credit note's line) takes days back from the
    line it names; a reversal that is itself reversed (a credit note of a repair) is undone."""

    def __init__(self, lines: Sequence[Line]):
        self.items = [line for line in lines if not line.reverses and line.kind == RECURRING]
        by_target: dict[str, list[Line]] = defaultdict(list)
        for line in lines:
            if line.reverses:
                by_target[line.reverses].append(line)
        memo: dict[str, bool] = {}

        def active(line: Line) -> bool:
            if line.id not in memo:
                memo[line.id] = True  # a cycle cannot happen; this only guards against one
                memo[line.id] = not any(active(r) for r in by_target.get(line.id, ()))
            return memo[line.id]

        self.taken_days: dict[str, Intervals] = defaultdict(list)
        self.taken_amount: dict[str, Decimal] = defaultdict(Decimal)
        for line in lines:  # partial credit notes took amounts, not days: a repair never credits beyond them
            if line.kind == ADJUSTMENT and line.credits:
                self.taken_amount[line.credits] += line.amount
        for target, reversals in by_target.items():
            for line in reversals:
                if active(line):
                    self.taken_days[target].append((line.start, line.end))
                    self.taken_amount[target] += line.amount

    def covered(self, price: Decimal, period: Period) -> list[tuple[tuple[date, date], Line]]:
        """(days, item) still invoiced at `price` within `period`."""
        out = []
        for item in self.items:
            if item.per_period != price:
                continue
            for piece in _subtract([(item.start, item.end)], _merge(self.taken_days[item.id])):
                if (part := _overlap(piece, (period.start, period.end))) is not None:
                    out.append((part, item))
        return out

    def prices(self, period: Period) -> set[Decimal]:
        return {item.per_period for item in self.items if _overlap((item.start, item.end), (period.start, period.end))}

    def credit(self, item: Line, days: tuple[date, date], rounder: Rounder) -> Line:
        """A line taking `days` back from `item`: its share of the item's amount; the item's last
        days take exactly what is left of it."""
        count = (days[1] - days[0]).days
        left_days = item.days - sum((e - s).days for s, e in _merge(self.taken_days[item.id]))
        left = item.amount + self.taken_amount[item.id]
        if count >= left_days:
            amount = -left
        else:
            amount = -rounder(EXACT.multiply(item.amount, Decimal(count)) / Decimal(item.days))
            amount = max(amount, -left) if left >= 0 else min(amount, -left)  # never beyond what is left
        self.taken_days[item.id].append(days)
        self.taken_amount[item.id] += amount
        return Line(item.subscription, item.code, item.name, RECURRING, amount, days[0], days[1],
                    per_period=item.per_period, period=item.period, tax_category=item.tax_category,
                    reverses=item.id, label=item.label, revenue_account=item.revenue_account)


def _periods(charge: RecurringCharge, ledger: _Ledger, until: date) -> Sequence[Period]:
    """The charge's service periods (its cycle as it is now) from its first billed or invoiced day
    to the day before `until`: every day is in exactly one of them, whatever cycle older lines were
    cut by."""
    starts = [span.start for span in charge.spans] + [item.start for item in ledger.items]
    if not starts:
        return []
    ends = [span.end for span in charge.spans] + [item.end for item in ledger.items]
    return _cycle_periods(charge.cycle, min(starts), until if None in ends else min(until, max(ends)))


@lru_cache(maxsize=4096)  # pure; a bill run asks it for the same few cycles and days for every account
def _cycle_periods(cycle: Cycle, first: date, stop: date) -> tuple[Period, ...]:
    """The cycle's periods from the one containing `first` to the last starting before `stop`."""
    found, period = [], cycle.period_containing(first)
    while period.start < stop:
        found.append(period)
        period = cycle.next(period)
    return tuple(found)


def recurring_lines(charge: RecurringCharge, invoiced: Sequence[Line], target: date, rounder: Rounder,
                    until: date) -> list[Line]:
    ledger = _Ledger([line for line in invoiced if line.subscription == charge.subscription
                      and line.code == charge.code and line.kind in (RECURRING, ADJUSTMENT)])
    spans = {span.per_period: span for span in charge.spans}  # a price's terms: its (last) span's
    lines = []
    for period in _periods(charge, ledger, until):
        pieces = _pieces(charge, period)
        billed = _billed(charge, period, pieces)
        if not _due(charge, period, pieces[0][1] if pieces else None,
                    _merge(d for days in billed.values() for d in days), target, until):
            continue
        for price in sorted(set(billed) | ledger.prices(period)):
            pieces = ledger.covered(price, period)
            covered = _merge(days for days, _ in pieces)
            wanted = billed.get(price, [])
            span = spans.get(price)
            for start, end in _subtract(wanted, covered):
                whole = (start, end) == (period.start, period.end)
                value = price if whole else EXACT.multiply(price, Decimal((end - start).days)) / Decimal(period.days)
                lines.append(Line(charge.subscription, charge.code, (span.name if span else "") or charge.name,
                                  RECURRING, rounder(value), start, end, per_period=price, period=period,
                                  tax_category=(span.tax_category if span else "") or charge.tax_category,
                                  label=span.label if span else "",
                                  revenue_account=(span.revenue_account if span else "") or charge.revenue_account))
            for excess in _subtract(covered, wanted):
                for days, item in pieces:
                    if (part := _overlap(excess, days)) is not None:
                        if (credit := ledger.credit(item, part, rounder)).amount != 0:  # 0: credited already
                            lines.append(credit)
    return lines


# --- one-time charges -----------------------------------------------------------------------------

def one_time_lines(charges: Sequence[OneTimeCharge], invoiced: Sequence[Line], target: date,
                   rounder: Rounder) -> list[Line]:
    """Charges due by the target date and not invoiced yet; invoiced ones no longer in the events
    (an ad-hoc charge withdrawn) are credited with what is left of them."""
    due = {(c.subscription, c.code, c.on): c for c in charges if c.on <= target}
    items = [line for line in invoiced if line.kind == ONE_TIME and not line.is_credit]
    credits = [line for line in invoiced if line.kind == ONE_TIME and line.is_credit]
    lines, seen = [], set()
    for item in items:
        if item.start > target:  # not due yet on this date: neither billed nor withdrawn
            continue
        key = (item.subscription, item.code, item.start)
        left = item.amount + sum((c.amount for c in credits if c.reverses == item.id), Decimal(0))
        if key in due and key not in seen and left != 0:
            seen.add(key)
            continue
        if left != 0:
            lines.append(Line(item.subscription, item.code, item.name, ONE_TIME, -left, item.start, item.end,
                              tax_category=item.tax_category, reverses=item.id, label=item.label,
                              revenue_account=item.revenue_account))
    for key, charge in due.items():
        if key not in seen:
            lines.append(Line(charge.subscription, charge.code, charge.name, ONE_TIME, rounder(charge.amount),
                              charge.on, date.fromordinal(charge.on.toordinal() + 1),
                              tax_category=charge.tax_category, revenue_account=charge.revenue_account))
    return lines


# --- the whole account ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Events:
    """An account's billing events."""

    recurring: tuple[RecurringCharge, ...] = ()
    one_time: tuple[OneTimeCharge, ...] = ()
    invoiced: tuple[Line, ...] = field(default=())
    usage: tuple[UsageAggregate, ...] | None = ()  # None: the account's usage is not invoiced
    discounts: tuple[Discount, ...] = ()
    settled_before: date | None = None  # usage periods starting and discounts ending before it are settled


def calculate(events: Events, target: date, currency: str, rule: str = RoundingRule.HALF_UP,
              until: date | None = None) -> list[Line]:
    """The lines to invoice on `target` so that the invoices agree with the events: new charges,
    and credits for what was invoiced but is no longer due. `until`: the account's next bill date
    (charges in advance are billed for the periods starting before it); default the day after
    `target`."""
    rounder = Rounder(currency, rule)
    until = max(until or target, target + ONE_DAY)
    lines = []
    for charge in events.recurring:
        lines += recurring_lines(charge, events.invoiced, target, rounder, until)
    lines += one_time_lines(events.one_time, events.invoiced, target, rounder)
    lines += usage_lines(events.usage, events.invoiced, target, rounder, events.settled_before)
    lines += discount_lines(events.discounts, events.invoiced, lines, until, rounder, events.settled_before)
    return sorted(lines, key=lambda line: (line.kind == DISCOUNT, line.subscription, line.code, line.start,
                                           line.amount >= 0, line.amount))  # discounts after what they discount
