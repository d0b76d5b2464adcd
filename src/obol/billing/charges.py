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
- in advance: every service period that starts on or before it;
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

Amounts are rounded once per line, at INVOICE_LINE, in the account's currency with the tenant's
rule (`core/rounding.py`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT, Amount
from obol.core.periods import Cycle, Period
from obol.core.rounding import RoundingPlace, RoundingRule, round_amount

ADVANCE, ARREARS = "advance", "arrears"
RECURRING, ONE_TIME = "recurring", "one_time"


@dataclass(frozen=True)
class Span:
    """From `start` to `end` (excluded; None: open) a whole period costs `per_period`."""

    start: date
    end: date | None
    per_period: Decimal
    label: str = ""


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


@dataclass(frozen=True)
class Line:
    """One invoice line: `amount` (rounded; negative for a credit) for the service days `start` to
    `end` (excluded) of the charge `code` of `subscription`."""

    subscription: str
    code: str
    name: str
    kind: str  # recurring | one_time
    amount: Decimal
    start: date
    end: date
    per_period: Decimal | None = None  # recurring: what a whole period costs at this price
    period: Period | None = None  # recurring: the service period the days belong to
    tax_category: str = "standard"
    reverses: str | None = None  # a credit: the id of the invoiced line it corrects
    id: str = ""  # an invoiced line's own id
    label: str = ""
    revenue_account: str = ""

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def is_credit(self) -> bool:
        return self.reverses is not None


@dataclass
class _Rounder:
    currency: str
    rule: str

    def __call__(self, value: Decimal) -> Decimal:
        return round_amount(Amount(value, self.currency), RoundingPlace.INVOICE_LINE, self.rule).value


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


def _overlap(a: tuple[date, date], b: tuple[date, date]) -> tuple[date, date] | None:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return (start, end) if start < end else None


# --- recurring charges ----------------------------------------------------------------------------

def _span_days(span: Span, period: Period) -> tuple[date, date] | None:
    return _overlap((span.start, span.end or period.end), (period.start, period.end))


def _due(charge: RecurringCharge, period: Period, billed: Intervals, target: date) -> bool:
    if charge.billing == ADVANCE:
        return period.start <= target
    if period.end <= target:
        return True
    # in arrears, a period the charge left early is due once it has left it
    return bool(billed) and billed[-1][1] < period.end and billed[-1][1] <= target


def _billed(charge: RecurringCharge, period: Period) -> dict[Decimal, Intervals]:
    """The days of `period` the events bill, by price."""
    by_price: dict[Decimal, list] = defaultdict(list)
    pieces = [(days, span) for span in charge.spans if (days := _span_days(span, period))]
    if not pieces:
        return {}
    if charge.prorate:
        for days, span in pieces:
            by_price[span.per_period].append(days)
    else:
        _, first = min(pieces, key=lambda piece: piece[0][0])
        by_price[first.per_period].append((period.start, period.end))
    return {price: _merge(days) for price, days in by_price.items()}


def _periods(charge: RecurringCharge, invoiced: Sequence[Line], target: date) -> list[Period]:
    """Every service period the events or the invoiced lines touch, up to the target date."""
    found: set[Period] = {line.period for line in invoiced if line.period is not None}
    if charge.spans:
        period = charge.cycle.period_containing(min(span.start for span in charge.spans))
        ends = [span.end for span in charge.spans]
        last = None if None in ends else max(ends)
        while period.start <= target and (last is None or period.start < last):
            found.add(period)
            period = charge.cycle.next(period)
    return sorted(found)


def _credits(excess: Intervals, items: list[Line], credits: list[Line], rounder: _Rounder) -> list[Line]:
    """Credit lines for the invoiced days in `excess`, each against the item that billed them."""
    out = []
    for item in sorted(items, key=lambda line: line.start):
        reversed_days = sum(c.days for c in credits if c.reverses == item.id)
        reversed_amount = sum((c.amount for c in credits if c.reverses == item.id), Decimal(0))
        for interval in excess:
            part = _overlap(interval, (item.start, item.end))
            if part is None:
                continue
            days = (part[1] - part[0]).days
            if reversed_days + days >= item.days:  # the item's last days: what is left of it, exactly
                amount = -(item.amount + reversed_amount)
            else:
                amount = -rounder(EXACT.multiply(item.amount, Decimal(days)) / Decimal(item.days))
            out.append(Line(item.subscription, item.code, item.name, RECURRING, amount, part[0], part[1],
                            per_period=item.per_period, period=item.period, tax_category=item.tax_category,
                            reverses=item.id, label=item.label, revenue_account=item.revenue_account))
            reversed_days += days
            reversed_amount += amount
    return out


def recurring_lines(charge: RecurringCharge, invoiced: Sequence[Line], target: date, rounder: _Rounder) -> list[Line]:
    mine = [line for line in invoiced if line.subscription == charge.subscription and line.code == charge.code
            and line.kind == RECURRING]
    labels = {span.per_period: span.label for span in charge.spans}
    lines = []
    for period in _periods(charge, mine, target):
        billed = _billed(charge, period)
        if not _due(charge, period, _merge(d for days in billed.values() for d in days), target):
            continue
        in_period = [line for line in mine if line.period == period]
        items = [line for line in in_period if not line.is_credit]
        credits = [line for line in in_period if line.is_credit]
        prices = set(billed) | {line.per_period for line in items}
        for price in sorted(prices):
            price_items = [line for line in items if line.per_period == price]
            price_credits = [c for c in credits if any(c.reverses == item.id for item in price_items)]
            covered = _subtract(_merge((line.start, line.end) for line in price_items),
                                _merge((c.start, c.end) for c in price_credits))
            wanted = billed.get(price, [])
            for start, end in _subtract(wanted, covered):
                whole = (start, end) == (period.start, period.end)
                value = price if whole else EXACT.multiply(price, Decimal((end - start).days)) / Decimal(period.days)
                lines.append(Line(charge.subscription, charge.code, charge.name, RECURRING, rounder(value), start, end,
                                  per_period=price, period=period, tax_category=charge.tax_category,
                                  label=labels.get(price, ""), revenue_account=charge.revenue_account))
            lines += _credits(_subtract(covered, wanted), price_items, price_credits, rounder)
    return lines


# --- one-time charges -----------------------------------------------------------------------------

def one_time_lines(charges: Sequence[OneTimeCharge], invoiced: Sequence[Line], target: date,
                   rounder: _Rounder) -> list[Line]:
    """Charges due by the target date and not invoiced yet; invoiced ones no longer in the events
    (an ad-hoc charge withdrawn) are credited with what is left of them."""
    due = {(c.subscription, c.code, c.on): c for c in charges if c.on <= target}
    items = [line for line in invoiced if line.kind == ONE_TIME and not line.is_credit]
    credits = [line for line in invoiced if line.kind == ONE_TIME and line.is_credit]
    lines, seen = [], set()
    for item in items:
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


def calculate(events: Events, target: date, currency: str, rule: str = RoundingRule.HALF_UP) -> list[Line]:
    """The lines to invoice on `target` so that the invoices agree with the events: new charges,
    and credits for what was invoiced but is no longer due."""
    rounder = _Rounder(currency, rule)
    lines = []
    for charge in events.recurring:
        lines += recurring_lines(charge, events.invoiced, target, rounder)
    lines += one_time_lines(events.one_time, events.invoiced, target, rounder)
    return sorted(lines, key=lambda line: (line.subscription, line.code, line.start, line.amount >= 0, line.amount))
