"""Discounts on invoices, pure: (an account's discounts, the lines invoiced and proposed, the
target date) -> the discount lines to add. No database, no clock.

A discount (a promotion applied to a subscription, `balances.promotions.discounts_for`) applies to
the charges of its subscription whose kind and code it names, for the days of its window
`[starts, ends)`:
- **percent**: that share of the charges' amounts for the window's days;
- **first period free**: all of them (the window is the first period);
- **amount**: a fixed amount off per month of the window (months from its first day, cut by
  `core.periods`), never more than the charges of that month; a month the window ends in early (a
  cancellation) gets its share by days, rounded at PRORATION.

A charge line partly inside a window counts for its days inside (amount x days inside / days of
the line); a one-time charge counts when its day is inside. Credits count too, so a repair or a
credit note of a charge lowers its discount.

**Never twice.** For each window (each month, for an amount) and each VAT category and revenue
account of the charges, the discount due on everything invoiced and proposed so far is compared
with the discount lines already invoiced for it; the difference is the new line, rounded once. So
the discount follows the charges as they are billed (in advance, in arrears, prorated, repaired),
a run that repeats proposes nothing, and the lines of one window always add up to the rounded
discount of its charges.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from obol.billing.lines import Line, Rounder
from obol.core.errors import ValidationFailed
from obol.core.money import EXACT, Amount
from obol.core.periods import Cycle, Frequency, Period
from obol.core.rounding import RoundingPlace, round_amount

DISCOUNT = "discount"
PERCENT, AMOUNT, FIRST_PERIOD_FREE = "percent", "amount", "first_period_free"
# what a discount may apply to; one-off (adhoc) charges and partial credit notes (adjustments) are left alone
DISCOUNTABLE = {"recurring", "one_time", "usage"}
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Discount:
    """One applied discount: `kind` percent (`percent`, 20 is 20%), amount (`amount` per month, in
    the account's currency) or first_period_free; on the charges of `subscription` whose kind is in
    `charge_kinds` and code in `charge_codes` (empty: any), for the days `[starts, ends)`."""

    key: str  # the invoice lines' code: one per application
    name: str
    subscription: str
    kind: str
    starts: date
    ends: date
    percent: Decimal | None = None
    amount: Decimal | None = None
    charge_kinds: tuple[str, ...] = ()
    charge_codes: tuple[str, ...] = ()
    currency: str = ""  # an amount's currency (it must be the account's)

    def windows(self) -> list[Period]:
        if self.ends <= self.starts:
            return []
        if self.kind != AMOUNT:
            return [Period(self.starts, self.ends)]
        months = Cycle(Frequency.MONTH, day=self.starts.day)
        return [Period(max(p.start, self.starts), min(p.end, self.ends))
                for p in months.periods(self.starts, self.ends)]

    def takes(self, line: Line) -> bool:
        return (line.subscription == self.subscription and line.kind in DISCOUNTABLE
                and (not self.charge_kinds or line.kind in self.charge_kinds)
                and (not self.charge_codes or line.code in self.charge_codes))


def _inside(line: Line, window: Period) -> Decimal:
    """The part of `line`'s amount for its days inside `window` (exact)."""
    days = window.overlap_days(line.start, line.end)
    if days == 0 or line.days == 0:
        return Decimal(0)
    if days == line.days:
        return line.amount
    return EXACT.multiply(line.amount, Decimal(days)) / Decimal(line.days)


def _amount_of(discount: Discount, window: Period, rounder: Rounder) -> Decimal:
    """An amount discount's share for `window`: the whole amount for a whole month, else by days of
    the month (a cancellation or termination cut it short), rounded at PRORATION."""
    month = Cycle(Frequency.MONTH, day=discount.starts.day).period_containing(window.start)
    amount = discount.amount or Decimal(0)
    if window.days >= month.days:
        return amount
    return round_amount(Amount(month.prorate(amount, window.days), rounder.currency), RoundingPlace.PRORATION,
                        rounder.rule).value


def _due(discount: Discount, eligible: dict[tuple[str, str], Decimal], rounder: Rounder,
         window: Period) -> dict[tuple[str, str], Decimal]:
    """The discount (negative) per (tax category, revenue account) of a window's eligible charges."""
    if discount.kind == PERCENT:
        share = (discount.percent or Decimal(0)) / _HUNDRED
        return {group: -rounder(EXACT.multiply(value, share)) for group, value in eligible.items()}
    if discount.kind == FIRST_PERIOD_FREE:
        return {group: -rounder(value) for group, value in eligible.items()}
    total = sum(eligible.values(), Decimal(0))
    off = rounder(min(_amount_of(discount, window, rounder), total)) if total > 0 else Decimal(0)
    due, left = {}, off
    groups = sorted(eligible, key=lambda group: eligible[group])  # the largest takes the rounding remainder
    for n, group in enumerate(groups):
        part = left if n == len(groups) - 1 else rounder(off * eligible[group] / total)
        due[group], left = -part, left - part
    return due


def discount_lines(discounts: Sequence[Discount], invoiced: Sequence[Line], proposed: Sequence[Line], until: date,
                   rounder: Rounder, settled_before: date | None = None) -> list[Line]:
    """The discount lines for the windows that start before `until` (the account's next bill date:
    a quarterly account's months billed in advance are discounted with them). Windows that ended
    before `settled_before` (no longer read) are left as they are. Discounts apply in order, each
    to what the earlier ones left of the charges, so together they never take more than the charges."""
    charges = [line for line in (*invoiced, *proposed) if line.kind in DISCOUNTABLE]
    held: dict[tuple[str, date, str, str], Decimal] = defaultdict(Decimal)
    held_lines: dict[tuple[str, date, str, str], Line] = {}
    for line in invoiced:
        if line.kind == DISCOUNT and (settled_before is None or line.end > settled_before):
            key = (line.code, line.start, line.tax_category, line.revenue_account)
            held[key] += line.amount
            mine = held_lines.get(key)
            if mine is None or (not line.reverses and (mine.reverses or line.amount < mine.amount)):
                held_lines[key] = line  # the line a take-back reverses: the largest discount given
    wanted: dict[tuple[str, date, str, str], tuple[Decimal, Discount, Period]] = {}
    given: list[Line] = []  # the earlier discounts' amounts, as lines the later ones count against
    for discount in discounts:
        if discount.kind == AMOUNT and discount.currency and discount.currency != rounder.currency:
            raise ValidationFailed(f"discount: {discount.name} takes {discount.amount} {discount.currency} off, not "
                                   f"in the account's currency {rounder.currency}", field="discount_currency")
        for window in discount.windows():
            if window.start >= until or (settled_before is not None and window.end <= settled_before):
                continue
            eligible: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            for line in charges:
                if discount.takes(line) and (part := _inside(line, window)):
                    eligible[(line.tax_category, line.revenue_account)] += part
            for line in given:
                if line.subscription == discount.subscription and (part := _inside(line, window)):
                    group = (line.tax_category, line.revenue_account)
                    if group in eligible:
                        eligible[group] += part
            eligible = {group: value for group, value in eligible.items() if value > 0}
            for (category, account), value in _due(discount, eligible, rounder, window).items():
                wanted[(discount.key, window.start, category, account)] = (value, discount, window)
                given.append(Line(discount.subscription, discount.key, discount.name, DISCOUNT, value, window.start,
                                  window.end, tax_category=category, revenue_account=account))
    lines = []
    for key in sorted(set(wanted) | set(held), key=lambda k: (k[0], k[1], k[2], k[3])):
        value, discount, window = wanted.get(key, (Decimal(0), None, None))
        change = value - held.get(key, Decimal(0))
        if change == 0:
            continue
        before = held_lines.get(key)
        name = discount.name if discount else before.name
        subscription = discount.subscription if discount else before.subscription
        start, end = (window.start, window.end) if window else (before.start, before.end)
        lines.append(Line(subscription, key[0], name, DISCOUNT, change, start, end, tax_category=key[2],
                          revenue_account=key[3],
                          reverses=before.id if change > 0 and before is not None and not before.reverses else None))
    return lines
