"""Usage on invoices, pure: (an account's rated usage summed per subscription, service,
destination group and usage period; the usage lines invoices already hold; the target date) ->
the usage lines to add. No database, no clock.

- **In arrears.** A usage period (the account's monthly cycle the records were rated in,
  `RatedRecord.cycle_start`) is billed on the first run on or after the day it ends.
- **The amount** is the period's rated price (the records' prices summed exactly, rounded once per
  line at INVOICE_LINE). Allowances already paid for part of the usage: the line says the units
  priced (the overage) and the units included.
- **Never twice.** What invoices hold for the period (its line, supplements, credit notes'
  reversals) is subtracted. Records rated after the period was invoiced (a late file) give a
  supplement line on the next invoice; usage re-rated lower gives a credit that reverses the
  period's line. A run that repeats proposes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from obol.billing.lines import Line, Rounder
from obol.core.periods import Period

USAGE = "usage"


@dataclass(frozen=True)
class UsageAggregate:
    """The rated usage of one subscription's service and destination group in one usage period:
    `amount` the exact sum of what the records accrued (their prices, for a postpaid account);
    `quantity` the units priced; `included` the units allowances paid."""

    subscription: str
    service: str
    destination_group: str
    period: Period
    amount: Decimal
    quantity: Decimal
    included: Decimal = Decimal(0)
    unit: str = ""
    name: str = ""
    tax_category: str = "standard"
    revenue_account: str = ""

    @property
    def code(self) -> str:
        return usage_code(self.service, self.destination_group)


def usage_code(service: str, destination_group: str) -> str:
    """The charge code of a usage line: its service and destination group."""
    return f"usage:{service}:{destination_group}" if destination_group else f"usage:{service}"


def label_of(quantity: Decimal, included: Decimal, unit: str) -> str:
    text = f"{quantity.normalize():f} {unit}".strip()
    return f"{text}, {included.normalize():f} included" if included else text


def usage_lines(aggregates: Sequence[UsageAggregate] | None, invoiced: Sequence[Line], target: date,
                rounder: Rounder, settled_before: date | None = None) -> list[Line]:
    """The lines that make the invoices hold each ended usage period's rated amount. `aggregates`
    None: the account's usage is not invoiced (prepaid): nothing is billed or credited. Periods
    starting before `settled_before` (records no longer read) are settled: left as they are."""
    if aggregates is None:
        return []

    def open_(start: date, end: date) -> bool:
        return end <= target and (settled_before is None or start >= settled_before)

    held: dict[tuple[str, str, date], list[Line]] = defaultdict(list)
    for line in invoiced:
        if line.kind == USAGE:
            held[(line.subscription, line.code, line.start)].append(line)
    wanted = {(a.subscription, a.code, a.period.start): a for a in aggregates if open_(a.period.start, a.period.end)}
    lines = []
    for key in sorted(set(wanted) | {k for k, found in held.items() if open_(found[0].start, found[0].end)}):
        found, aggregate = held.get(key, []), wanted.get(key)
        have = sum((line.amount for line in found), Decimal(0))
        due = rounder(aggregate.amount) if aggregate else Decimal(0)
        if due == have:
            continue
        quantity = (aggregate.quantity if aggregate else Decimal(0)) - sum(
            (line.quantity or Decimal(0) for line in found), Decimal(0))
        included = (aggregate.included if aggregate else Decimal(0)) - sum(
            (line.included or Decimal(0) for line in found), Decimal(0))
        first = aggregate or found[0]
        period = aggregate.period if aggregate else Period(found[0].start, found[0].end)
        unit = aggregate.unit if aggregate else found[0].unit
        parts = [(due - have, None)] if due > have else _credits(found, have - due)
        for n, (amount, reverses) in enumerate(parts):
            q, i = (quantity, included) if n == 0 else (Decimal(0), Decimal(0))
            lines.append(Line(key[0], key[1], first.name, USAGE, amount, period.start, period.end, period=period,
                              tax_category=first.tax_category, reverses=reverses, label=label_of(q, i, unit),
                              revenue_account=first.revenue_account, quantity=q, included=i, unit=unit))
    return lines


def _credits(found: list[Line], amount: Decimal) -> list[tuple[Decimal, str | None]]:
    """`amount` taken back from a period's invoiced lines, the newest first, each at most what is
    left of it: [(negative amount, the line it reverses)]."""
    taken: dict[str, Decimal] = defaultdict(Decimal)
    for line in found:
        if line.reverses:
            taken[line.reverses] += line.amount
    parts, left = [], amount
    for item in reversed([line for line in found if not line.reverses and line.amount > 0]):
        part = min(item.amount + taken[item.id], left)
        if part > 0:
            parts.append((-part, item.id))
            left -= part
        if left == 0:
            break
    if left > 0:  # more than the lines hold (they were credited by other means): a plain credit
        parts.append((-left, None))
    return parts
