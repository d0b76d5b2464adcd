"""VAT per rate category (billing/tax.py), by hand."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing.tax import TaxRate, breakdown, rate_for
from obol.core.errors import ValidationFailed

PL_23 = TaxRate("PL", "standard", D("23"))
PL_8 = TaxRate("PL", "reduced", D("8"))


def test_three_lines_of_10_01_at_23_percent_carry_6_91_of_vat_not_6_90():
    totals = breakdown([(D("10.01"), PL_23)] * 3, "PLN")
    assert [(s.code, s.rate, s.taxable, s.tax) for s in totals.subtotals] == [("S", D("23"), D("30.03"), D("6.91"))]
    assert (totals.net, totals.tax, totals.gross) == (D("30.03"), D("6.91"), D("36.94"))


def test_each_rate_is_its_own_row_of_the_breakdown():
    totals = breakdown([(D("100.00"), PL_23), (D("19.99"), PL_8), (D("0.01"), PL_8), (D("-10.00"), PL_23)], "PLN")
    assert [(s.rate, s.taxable, s.tax) for s in totals.subtotals] == [
        (D("23"), D("90.00"), D("20.70")),  # credits reduce their own category
        (D("8"), D("20.00"), D("1.60")),
    ]
    assert totals.gross == D("132.30")


def test_prices_with_tax_included_take_the_vat_out_of_each_category():
    totals = breakdown([(D("12.30"), PL_23), (D("12.30"), PL_23)], "PLN", prices_include_tax=True)
    # 24.60 x 23 / 123 = 4.60 exactly; the taxable amount is what is left
    assert [(s.taxable, s.tax, s.gross) for s in totals.subtotals] == [(D("20.00"), D("4.60"), D("24.60"))]
    totals = breakdown([(D("10.00"), PL_23)], "PLN", prices_include_tax=True)
    assert (totals.net, totals.tax) == (D("8.13"), D("1.87"))  # 10 x 23 / 123 = 1.8699...


def test_the_rate_in_force_on_the_day_is_used_and_a_missing_one_is_named():
    rates = [TaxRate("DE", "standard", D("16"), valid_from=date(2020, 7, 1), valid_to=date(2021, 1, 1)),
             TaxRate("DE", "standard", D("19"), valid_to=date(2020, 7, 1)),
             TaxRate("DE", "standard", D("19"), valid_from=date(2021, 1, 1))]
    assert rate_for(rates, "DE", "standard", date(2020, 12, 31)).rate == D("16")
    assert rate_for(rates, "DE", "standard", date(2021, 1, 1)).rate == D("19")
    with pytest.raises(ValidationFailed, match="no VAT rate for 'reduced' in DE on 2021-01-01"):
        rate_for(rates, "DE", "reduced", date(2021, 1, 1))
