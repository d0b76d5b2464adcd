"""The shape every calculation of invoice lines shares (`charges`, `usage_charges`,
`discounts`): a proposed or invoiced `Line`, and the one rounding of a line's amount."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from obol.core.money import Amount
from obol.core.periods import Period
from obol.core.rounding import RoundingPlace, round_amount


@dataclass(frozen=True)
class Line:
    """One invoice line: `amount` (rounded; negative for a credit) for the service days `start` to
    `end` (excluded) of the charge `code` of `subscription`."""

    subscription: str
    code: str
    name: str
    kind: str  # recurring | one_time | usage | discount | adhoc | adjustment
    amount: Decimal
    start: date
    end: date
    per_period: Decimal | None = None  # recurring: what a whole period costs at this price
    period: Period | None = None  # recurring, usage: the service period the days belong to
    tax_category: str = "standard"
    reverses: str | None = None  # a credit: the id of the invoiced line it corrects
    id: str = ""  # an invoiced line's own id
    label: str = ""
    revenue_account: str = ""
    quantity: Decimal | None = None  # usage: units priced
    included: Decimal | None = None  # usage: units allowances paid
    unit: str = ""
    credits: str | None = None  # a partial credit note's adjustment: the id of the invoiced line it credits

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def is_credit(self) -> bool:
        return self.reverses is not None


@dataclass
class Rounder:
    """A line's amount rounded once, at INVOICE_LINE, in the account's currency with the tenant's rule."""

    currency: str
    rule: str

    def __call__(self, value: Decimal) -> Decimal:
        return round_amount(Amount(value, self.currency), RoundingPlace.INVOICE_LINE, self.rule).value
