"""Model fields for exact amounts and units.

`ExactDecimalField` stores any Decimal with up to 20 integer digits and 18 decimals exactly on both
databases: PostgreSQL as `numeric` (arbitrary precision), SQLite as canonical text (SQLite has no
exact decimal type, and Django's own DecimalField goes through float there). Anything larger is
refused, never rounded. On SQLite the comparisons (<, <=, >, >=, range) compare numerically
through a cast, which is exact to 15 significant digits, enough for search and filters; equality
and `in` are exact. SQLite sorts the text column as text: order by `numeric_order(field)`. Sum
amounts in Python (`sum_amounts`) or Polars, not with SQL SUM, which is only exact on PostgreSQL.
"""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import lookups

from obol.core.errors import ObolError, ValidationFailed
from obol.core.money import to_decimal
from obol.core.units import MAX_DECIMALS, UNITS, unit_choices

MAX_INTEGER_DIGITS = 20  # with 18 decimals: what numeric(38, 18) would hold


def canonical_text(value: Decimal) -> str:
    """The one text form of a decimal: fixed point, no exponent, no trailing zeros, no '-0'."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def check_storable(value: Decimal, field: str | None = None) -> Decimal:
    """Refuse what the amount field cannot store exactly: more than 18 decimals or 20 integer digits."""
    sign, digits, exponent = value.as_tuple()
    decimals = -exponent if exponent < 0 else 0
    significant = list(digits)
    while decimals and significant and significant[-1] == 0:  # trailing zeros of the fraction are harmless
        significant.pop()
        decimals -= 1
    if decimals > MAX_DECIMALS:
        raise ValidationFailed(f"{field or 'amount'}: {value} has more than {MAX_DECIMALS} decimals", field=field)
    if value.copy_abs() >= Decimal(10) ** MAX_INTEGER_DIGITS:
        raise ValidationFailed(f"{field or 'amount'}: {value} has more than {MAX_INTEGER_DIGITS} integer digits",
                               field=field)
    return value


def validate_storable(value) -> None:
    try:
        check_storable(to_decimal(value))
    except ObolError as exc:
        raise ValidationError(exc.message.split(": ", 1)[-1], code="invalid_amount") from None


class ExactDecimalField(models.Field):
    description = "Exact decimal number (up to 20 integer digits and 18 decimals), stored losslessly"
    default_validators = [validate_storable]

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "numeric"
        if connection.vendor == "sqlite":
            return "text"
        return f"decimal(65,{MAX_DECIMALS})"

    def get_internal_type(self):
        return "ExactDecimalField"

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        try:
            return to_decimal(value if not isinstance(value, float) else str(value))
        except ObolError as exc:
            raise ValidationError(exc.message, code="invalid") from None

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        if isinstance(value, models.expressions.Combinable):
            return value
        return check_storable(to_decimal(value, field=self.name), self.name)

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or not isinstance(value, Decimal):
            return value
        if connection.vendor == "sqlite":
            return canonical_text(value)
        return value

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": forms.DecimalField, **kwargs})

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else format(value, "f")


class _NumericComparison:
    """On SQLite the column holds text: compare as numbers, not as strings."""

    def as_sqlite(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        return f"CAST({lhs_sql} AS REAL) {self.sql_operator} CAST({rhs_sql} AS REAL)", (*lhs_params, *rhs_params)


@ExactDecimalField.register_lookup
class ExactGreaterThan(_NumericComparison, lookups.GreaterThan):
    sql_operator = ">"


@ExactDecimalField.register_lookup
class ExactGreaterThanOrEqual(_NumericComparison, lookups.GreaterThanOrEqual):
    sql_operator = ">="


@ExactDecimalField.register_lookup
class ExactLessThan(_NumericComparison, lookups.LessThan):
    sql_operator = "<"


@ExactDecimalField.register_lookup
class ExactLessThanOrEqual(_NumericComparison, lookups.LessThanOrEqual):
    sql_operator = "<="


@ExactDecimalField.register_lookup
class ExactRange(lookups.Range):
    def as_sqlite(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        low, high = rhs_sql if isinstance(rhs_sql, (list, tuple)) else ("%s", "%s")
        return (f"CAST({lhs_sql} AS REAL) BETWEEN CAST({low} AS REAL) AND CAST({high} AS REAL)",
                (*lhs_params, *rhs_params))


def numeric_order(field: str, descending: bool = False):
    """An ordering that sorts an ExactDecimalField by value on every database (SQLite stores text)."""
    expression = models.functions.Cast(field, models.FloatField())
    return expression.desc() if descending else expression.asc()


def validate_unit(code: str) -> None:
    if code not in UNITS:
        raise ValidationError(f"{code!r} is not a known unit", code="unknown_unit")


def validate_currency(code: str) -> None:
    unit = UNITS.get(code)
    if unit is None or not unit.is_money:
        raise ValidationError(f"{code!r} is not an ISO 4217 or crypto currency", code="unknown_currency")


class UnitField(models.CharField):
    """A unit code from the registry in `units.py` (EUR, BTC, minute, megabyte, ...)."""

    def __init__(self, *args, money_only: bool = False, **kwargs):
        self.money_only = money_only
        kwargs.setdefault("max_length", 16)
        kwargs.setdefault("validators", [validate_currency if money_only else validate_unit])
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("validators", None)
        if kwargs.get("max_length") == 16:
            kwargs.pop("max_length")
        if self.money_only:
            kwargs["money_only"] = True
        return name, path, args, kwargs

    def formfield(self, **kwargs):
        choices = [(c, c) for c, _ in unit_choices() if not self.money_only or UNITS[c].is_money]
        return forms.ChoiceField(choices=[("", "---------"), *choices], required=not self.blank, **{
            k: v for k, v in kwargs.items() if k in ("label", "help_text", "initial")
        })
