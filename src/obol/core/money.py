"""Amounts: an exact Decimal with its unit. Never a float.

Arithmetic runs in a wide decimal context (60 digits) that raises instead of rounding, so 18-decimal
crypto amounts add up exactly or fail loudly; rounding is never implicit here, it happens at the
named places in `rounding.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

from obol.core.errors import UnitMismatch, ValidationFailed
from obol.core.units import MAX_DECIMALS, Unit, get_unit

# Inexact is trapped: a result that would need rounding raises decimal.Inexact instead.
EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def to_decimal(value, *, field: str | None = None) -> Decimal:
    """Decimal from a Decimal, int or numeric string; floats are refused (they are not exact)."""
    if isinstance(value, bool):
        raise ValidationFailed(f"{value!r} is not an amount", field=field)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationFailed(f"{value!r} is not a decimal number", field=field) from None
    elif isinstance(value, float):
        raise ValidationFailed(
            f"{value!r} is a float; amounts must be given as decimal strings or integers", field=field
        )
    else:
        raise ValidationFailed(f"{value!r} is not an amount", field=field)
    if not result.is_finite():
        raise ValidationFailed(f"{value!r} is not a finite number", field=field)
    return result


@dataclass(frozen=True, slots=True)
class Amount:
    value: Decimal
    unit: Unit

    def __init__(self, value, unit: Unit | str):
        object.__setattr__(self, "value", to_decimal(value))
        object.__setattr__(self, "unit", get_unit(unit))

    @classmethod
    def zero(cls, unit: Unit | str) -> Amount:
        return cls(Decimal(0), unit)

    def _same_unit(self, other: object, verb: str) -> Amount:
        if not isinstance(other, Amount):
            raise TypeError(f"cannot {verb} {type(other).__name__} and an Amount")
        if other.unit != self.unit:
            raise UnitMismatch(
                f"cannot {verb} {self} and {other}: units differ ({self.unit.code} vs {other.unit.code})"
            )
        return other

    def __add__(self, other: Amount) -> Amount:
        other = self._same_unit(other, "add")
        return Amount(EXACT.add(self.value, other.value), self.unit)

    def __sub__(self, other: Amount) -> Amount:
        other = self._same_unit(other, "subtract")
        return Amount(EXACT.subtract(self.value, other.value), self.unit)

    def __mul__(self, factor) -> Amount:
        if isinstance(factor, Amount):
            raise TypeError("an Amount multiplies by a number, not by another Amount")
        return Amount(EXACT.multiply(self.value, to_decimal(factor)), self.unit)

    __rmul__ = __mul__

    def __neg__(self) -> Amount:
        return Amount(-self.value, self.unit)

    def __abs__(self) -> Amount:
        return Amount(abs(self.value), self.unit)

    def __lt__(self, other: Amount) -> bool:
        return self.value < self._same_unit(other, "compare").value

    def __le__(self, other: Amount) -> bool:
        return self.value <= self._same_unit(other, "compare").value

    def __gt__(self, other: Amount) -> bool:
        return self.value > self._same_unit(other, "compare").value

    def __ge__(self, other: Amount) -> bool:
        return self.value >= self._same_unit(other, "compare").value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Amount) and other.unit == self.unit and other.value == self.value

    def __hash__(self) -> int:
        return hash((self.value, self.unit.code))

    def is_zero(self) -> bool:
        return self.value == 0

    def convert(self, unit: Unit | str) -> Amount:
        """Exact conversion inside one dimension (seconds to minutes, bytes to megabytes). A result
        that is not exact within 18 decimals (1 second is 0.0166... minutes) is refused: convert the
        other way, or round at a named place first."""
        target = get_unit(unit)
        if target == self.unit:
            return self
        if self.unit.dimension is None or self.unit.dimension != target.dimension:
            raise UnitMismatch(f"cannot convert {self.unit.code} to {target.code}: different dimensions")
        base = EXACT.multiply(self.value, self.unit.base_factor)
        try:
            value = EXACT.divide(base, target.base_factor)
        except Inexact:
            value = None
        if value is None or value.normalize(EXACT).as_tuple().exponent < -MAX_DECIMALS:
            raise ValidationFailed(
                f"{self} is not an exact number of {target.code}s; convert to the smaller unit instead",
                code="inexact_conversion",
            )
        return Amount(value, target)

    def __str__(self) -> str:
        return f"{format(self.value, 'f')} {self.unit.code}"

    def __repr__(self) -> str:
        return f"Amount('{format(self.value, 'f')}', '{self.unit.code}')"


def sum_amounts(amounts, unit: Unit | str) -> Amount:
    """Exact sum of amounts of one unit (the empty sum is zero of that unit)."""
    total = Amount.zero(unit)
    for amount in amounts:
        total = total + amount
    return total


def digits(value: Decimal, unit: Unit | str) -> str:
    """`value` with at least the unit's decimals and never fewer digits than it has (10.5 EUR ->
    '10.50'), without the unit: for documents, files and summaries that name the unit elsewhere."""
    unit = get_unit(unit)
    exponent = value.as_tuple().exponent
    decimals = max(unit.decimals if unit.is_money else 0, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:.{decimals}f}"


def display(value: Decimal, unit: Unit | str) -> str:
    """`value` for people, with its unit: '10.50 EUR' (see `digits`)."""
    return f"{digits(value, unit)} {get_unit(unit).code}"
