"""Rounding happens here and nowhere else, at a named place, with the tenant's rule.

Places that round to the unit's minor unit (invoice line, tax total, ...) use ISO 4217's minor
units (JPY 0, EUR 2, BHD 3) or the unit's own precision; rating keeps 6 decimals.
"""
from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from enum import Enum

from django.db import models

from obol.core.errors import ValidationFailed
from obol.core.money import Amount
from obol.core.units import get_unit

# The one context allowed to drop digits: rounding at a named place.
_ROUNDING = Context(prec=60, traps=[InvalidOperation])


class RoundingRule(models.TextChoices):
    HALF_UP = "half_up", "Half up (0.5 rounds away from zero)"
    HALF_EVEN = "half_even", "Half even (banker's rounding)"


_DECIMAL_MODES = {RoundingRule.HALF_UP: ROUND_HALF_UP, RoundingRule.HALF_EVEN: ROUND_HALF_EVEN}


class RoundingPlace(Enum):
    """Where an amount may be rounded. `decimals` is fixed for some places; None means the unit's
    own (a currency's minor unit)."""

    RATING = "rating"
    DISPLAY = "display"
    INVOICE_LINE = "invoice_line"
    TAX_TOTAL = "tax_total"
    INVOICE_TOTAL = "invoice_total"
    PAYMENT = "payment"
    PRORATION = "proration"
    ALLOWANCE = "allowance"
    LOYALTY_POINTS = "loyalty_points"
    COVERAGE = "coverage"  # money a prepaid account can pay batch-rated usage with: never more than it holds

    @property
    def decimals(self) -> int | None:
        return _FIXED_DECIMALS.get(self)


# Rating keeps 6 decimals whatever the currency; showing a balance in a larger unit (seconds as
# minutes) does too. Every other place rounds to the unit's own decimals.
_FIXED_DECIMALS = {RoundingPlace.RATING: 6, RoundingPlace.DISPLAY: 6, RoundingPlace.LOYALTY_POINTS: 0,
                   RoundingPlace.COVERAGE: 6}
# Loyalty points are earned in whole points, always rounded down, whatever the tenant's rule;
# the money that covers batch usage is counted at the rating precision, rounded down (0.0000015
# BTC covers 1 micro-unit, not 2).
_FIXED_MODES = {RoundingPlace.LOYALTY_POINTS: ROUND_DOWN, RoundingPlace.COVERAGE: ROUND_DOWN}


def round_amount(amount: Amount, place: RoundingPlace, rule: RoundingRule | str = RoundingRule.HALF_UP) -> Amount:
    decimals = place.decimals if place.decimals is not None else amount.unit.decimals
    quantum = Decimal(1).scaleb(-decimals)
    mode = _FIXED_MODES.get(place) or _DECIMAL_MODES[RoundingRule(rule)]
    value = amount.value.quantize(quantum, rounding=mode, context=_ROUNDING)
    return Amount(value, amount.unit)


def convert_rounded(amount: Amount, unit, place: RoundingPlace, rule: RoundingRule | str = RoundingRule.HALF_UP) -> Amount:
    """`amount` in another unit of its dimension, rounded at `place` when the conversion is not
    exact (3599 seconds shown in minutes)."""
    try:
        return amount.convert(unit)
    except ValidationFailed:
        target = get_unit(unit)
        if amount.unit.dimension is None or amount.unit.dimension != target.dimension:
            raise
        base = _ROUNDING.multiply(amount.value, amount.unit.base_factor)
        return round_amount(Amount(_ROUNDING.divide(base, target.base_factor), target), place, rule)
