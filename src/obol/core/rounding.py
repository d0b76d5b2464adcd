"""Rounding happens here and nowhere else, at a named place, with the tenant's rule.

Places that round to the unit's minor unit (invoice line, tax total, ...) use ISO 4217's minor
units (JPY 0, EUR 2, BHD 3) or the unit's own precision; rating keeps 6 decimals.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from enum import Enum

from django.db import models

from obol.core.money import Amount

# The one context allowed to drop digits: rounding at a named place.
_ROUNDING = Context(prec=60, traps=[InvalidOperation])


class RoundingRule(models.TextChoices):
    HALF_UP = "half_up", "Half up (0.5 rounds away from zero)"
    HALF_EVEN = "half_even", "Half even (banker's rounding)"


_DECIMAL_MODES = {RoundingRule.HALF_UP: ROUND_HALF_UP, RoundingRule.HALF_EVEN: ROUND_HALF_EVEN}


class RoundingPlace(Enum):
    """Where an amount may be rounded, and to how many decimals (None: the unit's own)."""

    RATING = 6
    INVOICE_LINE = None
    TAX_TOTAL = None
    INVOICE_TOTAL = None
    PAYMENT = None
    PRORATION = None
    ALLOWANCE = None

    @property
    def decimals(self) -> int | None:
        return self.value


def round_amount(amount: Amount, place: RoundingPlace, rule: RoundingRule | str = RoundingRule.HALF_UP) -> Amount:
    decimals = place.decimals if place.decimals is not None else amount.unit.decimals
    quantum = Decimal(1).scaleb(-decimals)
    value = amount.value.quantize(quantum, rounding=_DECIMAL_MODES[RoundingRule(rule)], context=_ROUNDING)
    return Amount(value, amount.unit)
