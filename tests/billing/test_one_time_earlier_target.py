"""A one-time charge dated after the target date is neither billed nor withdrawn by a calculation
for that date (a bill run of an earlier day resumed after a later one).
"""
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from obol.billing.charges import Events, OneTimeCharge, calculate


def test_a_future_one_time_charge_is_not_credited_by_an_earlier_run():
    fee = OneTimeCharge("S-1", "setup", "Set-up fee", date(2026, 12, 5), D("49.90"))
    billed = [replace(line, id="i0") for line in calculate(Events(one_time=(fee,)), date(2026, 12, 5), "EUR")]
    assert calculate(Events(one_time=(fee,), invoiced=tuple(billed)), date(2026, 12, 1), "EUR") == []
