"""Money and units: exact amounts, ISO 4217 minor units, named rounding with the tenant's rule."""
import decimal
import functools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obol.core.errors import UnitMismatch, ValidationFailed
from obol.core.money import EXACT, Amount, sum_amounts
from obol.core.rounding import RoundingPlace, RoundingRule, round_amount
from obol.core.units import get_unit


def test_half_up_and_half_even_at_the_invoice_line():
    amount = Amount("10.005", "EUR")
    assert round_amount(amount, RoundingPlace.INVOICE_LINE, RoundingRule.HALF_UP) == Amount("10.01", "EUR")
    assert round_amount(amount, RoundingPlace.INVOICE_LINE, RoundingRule.HALF_EVEN) == Amount("10.00", "EUR")


def test_half_up_is_the_default_rule():
    assert round_amount(Amount("2.345", "EUR"), RoundingPlace.INVOICE_LINE).value == Decimal("2.35")


@pytest.mark.parametrize(
    ("code", "decimals"),
    [("JPY", 0), ("EUR", 2), ("USD", 2), ("BHD", 3), ("KWD", 3), ("CLF", 4), ("BTC", 8), ("ETH", 18)],
)
def test_minor_units_come_from_the_standard(code, decimals):
    assert get_unit(code).decimals == decimals


def test_one_yen_has_no_minor_unit():
    assert round_amount(Amount("1.4", "JPY"), RoundingPlace.INVOICE_LINE).value == Decimal("1")
    assert str(round_amount(Amount("1", "JPY"), RoundingPlace.INVOICE_LINE)) == "1 JPY"


def test_bahraini_dinar_rounds_to_fils():
    assert round_amount(Amount("1.23456", "BHD"), RoundingPlace.TAX_TOTAL).value == Decimal("1.235")


def test_rating_keeps_six_decimals_whatever_the_currency():
    assert round_amount(Amount("0.0166666666", "EUR"), RoundingPlace.RATING).value == Decimal("0.016667")


def test_adding_amounts_of_different_units_is_refused():
    with pytest.raises(UnitMismatch, match="cannot add 1 EUR and 1 USD: units differ"):
        Amount("1", "EUR") + Amount("1", "USD")
    with pytest.raises(UnitMismatch):
        Amount("60", "second") + Amount("1", "minute")


def test_floats_are_refused():
    with pytest.raises(ValidationFailed, match="float"):
        Amount(0.1, "EUR")
    with pytest.raises(ValidationFailed):
        Amount("1", "EUR") * 1.5


def test_unknown_unit_is_refused():
    with pytest.raises(ValidationFailed, match="unknown unit 'XYZ'"):
        Amount("1", "XYZ")


def test_eth_arithmetic_is_exact_to_the_wei():
    big = Amount("123456789.123456789012345678", "ETH")
    wei = Amount("0.000000000000000001", "ETH")
    assert (big + wei).value == Decimal("123456789.123456789012345679")
    assert (big + big).value == Decimal("246913578.246913578024691356")


def test_explicit_conversion_inside_a_dimension():
    assert Amount("90", "second").convert("minute") == Amount("1.5", "minute")
    assert Amount("1", "gigabyte").convert("megabyte") == Amount("1024", "megabyte")
    assert Amount("3", "megabyte").convert("byte").value == 3 * 1024 * 1024
    with pytest.raises(UnitMismatch, match="cannot convert second to megabyte"):
        Amount("1", "second").convert("megabyte")


def test_a_conversion_that_is_not_exact_is_refused_not_rounded():
    with pytest.raises(ValidationFailed, match="not an exact number of minutes") as err:
        Amount("1", "second").convert("minute")
    assert err.value.code == "inexact_conversion"
    assert Amount("1", "minute").convert("second") == Amount("60", "second")


def test_arithmetic_that_would_need_rounding_raises():
    with pytest.raises(decimal.Inexact):
        Amount(Decimal(10) ** 45, "ETH") + Amount("0.000000000000000001", "ETH")


def test_sum_of_nothing_is_zero_of_the_unit():
    assert sum_amounts([], "SMS") == Amount("0", "sms")


@given(st.lists(st.decimals(min_value=-10**9, max_value=10**9, places=18, allow_nan=False), max_size=30))
def test_sums_are_exact_and_order_independent(values):
    amounts = [Amount(v, "ETH") for v in values]
    assert sum_amounts(amounts, "ETH") == sum_amounts(reversed(amounts), "ETH")
    assert sum_amounts(amounts, "ETH").value == functools.reduce(EXACT.add, values, Decimal(0))


def test_large_eth_sums_keep_every_wei():
    big = Decimal("999999999.999999999999999999")
    assert sum_amounts([Amount(big, "ETH")] * 11, "ETH").value == Decimal("10999999999.999999999999999989")
