"""VAT of an invoice, pure: rates in force on a day, and the breakdown per VAT category and rate,
rounded once per category (EN 16931 BG-23, "VAT breakdown"), never per line.

Three lines of 10.01 at 23%: the category's taxable amount is 30.03 and its VAT 30.03 x 23% =
6.9069 -> 6.91. Rounding per line would give 3 x 2.30 = 6.90, which EN 16931 does not allow.

- Prices without tax (the default): a category's VAT is its lines' sum x rate, rounded at TAX_TOTAL.
- Prices with tax included (a tenant selling to consumers): a category's VAT is its lines' sum x
  rate / (100 + rate), rounded at TAX_TOTAL; its taxable amount is the sum less that VAT.

A rate belongs to a country and a product tax category (the catalog's `tax_category`), with the
dates it is in force (`valid_to` excluded) and its EN 16931 category code (S standard, Z zero, E
exempt, AE reverse charge, K intra-community, G export, O outside scope).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal, InvalidOperation

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT, Amount
from obol.core.rounding import RoundingPlace, RoundingRule, round_amount

HUNDRED = Decimal(100)
# a VAT share is rarely exact (23 / 123): kept to 60 digits, rounded once at TAX_TOTAL
_WIDE = Context(prec=60, traps=[InvalidOperation])


@dataclass(frozen=True)
class TaxRate:
    country: str
    category: str  # the product tax category it applies to
    rate: Decimal  # percent: 23 means 23%
    code: str = "S"  # EN 16931 VAT category code
    valid_from: date = date.min
    valid_to: date | None = None  # excluded

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def rate_for(rates: Sequence[TaxRate], country: str, category: str, day: date) -> TaxRate:
    """The rate of `category` in `country` on `day`; an error naming what is missing otherwise."""
    found = [r for r in rates if r.country == country and r.category == category and r.in_force(day)]
    if not found:
        raise ValidationFailed(f"tax_category: no VAT rate for {category!r} in {country} on {day}",
                               field="tax_category")
    if len(found) > 1:
        raise ValidationFailed(f"tax_category: {len(found)} VAT rates for {category!r} in {country} on {day}",
                               field="tax_category")
    return found[0]


@dataclass(frozen=True)
class TaxSubtotal:
    """One row of the VAT breakdown: the lines of one category and rate."""

    code: str
    rate: Decimal
    taxable: Decimal  # net
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.taxable + self.tax


@dataclass(frozen=True)
class Totals:
    subtotals: tuple[TaxSubtotal, ...]

    @property
    def net(self) -> Decimal:
        return sum((s.taxable for s in self.subtotals), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return sum((s.tax for s in self.subtotals), Decimal(0))

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def breakdown(lines: Iterable[tuple[Decimal, TaxRate]], currency: str, rule: str = RoundingRule.HALF_UP,
              prices_include_tax: bool = False) -> Totals:
    """The VAT breakdown of an invoice's lines `(amount, rate)` (amounts already rounded per line)."""
    sums: dict[tuple[str, Decimal], Decimal] = {}
    for amount, rate in lines:
        key = (rate.code, rate.rate)
        sums[key] = EXACT.add(sums.get(key, Decimal(0)), amount)
    subtotals = []
    for (code, rate), total in sorted(sums.items(), key=lambda item: (-item[0][1], item[0][0])):
        share = _WIDE.divide(rate, HUNDRED + rate if prices_include_tax else HUNDRED)
        tax = round_amount(Amount(_WIDE.multiply(total, share), currency), RoundingPlace.TAX_TOTAL, rule).value
        taxable = total - tax if prices_include_tax else total
        subtotals.append(TaxSubtotal(code, rate, taxable, tax))
    return Totals(tuple(subtotals))


def spread(total: Decimal, weights: list[Decimal], currency: str, rule: str = RoundingRule.HALF_UP) -> list[Decimal]:
    """`total` cut in parts proportional to `weights`, each rounded at INVOICE_LINE, the last taking
    what is left, so that the parts add up to `total` exactly (a VAT row's net over its lines or
    revenue accounts, with prices including tax)."""
    whole = sum(weights, Decimal(0))
    parts, left = [], total
    for n, weight in enumerate(weights):
        if n == len(weights) - 1 or whole == 0:
            part = left if n == len(weights) - 1 else Decimal(0)
        else:
            part = round_amount(Amount(_WIDE.divide(_WIDE.multiply(total, weight), whole), currency),
                                RoundingPlace.INVOICE_LINE, rule).value
        parts.append(part)
        left -= part
    return parts


def line_nets(lines: list[tuple[Decimal, str, Decimal]], totals: Totals, currency: str,
              rule: str = RoundingRule.HALF_UP) -> list[Decimal]:
    """The net of each line `(amount, code, rate)` of an invoice whose prices include tax: each VAT
    row's taxable amount spread over its lines (`spread`)."""
    nets = [Decimal(0)] * len(lines)
    for row in totals.subtotals:
        mine = [n for n, (_, code, rate) in enumerate(lines) if (code, rate) == (row.code, row.rate)]
        for n, part in zip(mine, spread(row.taxable, [lines[n][0] for n in mine], currency, rule), strict=True):
            nets[n] = part
    return nets
