"""Usage on invoices, the pure part (billing/usage_charges.py): ended usage periods billed in
arrears, allowance overage in the label, late and re-rated records repaired, never billed twice.
Amounts worked out by hand."""
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from obol.billing.charges import Events, calculate
from obol.billing.usage_charges import UsageAggregate
from obol.core.periods import Period

NOVEMBER = Period(date(2026, 11, 1), date(2026, 12, 1))


def voice(amount, quantity="25", included="100"):
    return UsageAggregate("7", "voice", "national", NOVEMBER, D(amount), D(quantity), D(included), unit="minute",
                          name="Calls – national")


def invoiced(lines, prefix):
    return tuple(replace(line, id=f"{prefix}{n}") for n, line in enumerate(lines))


def test_an_ended_period_is_billed_in_arrears_at_its_rated_amount():
    data = UsageAggregate("7", "data", "", NOVEMBER, D("3.004"), D("2048"), unit="megabyte", name="Data")
    events = Events(usage=(voice("12.345678"), data))
    assert calculate(events, date(2026, 11, 30), "EUR") == []  # November has not ended
    lines = calculate(events, date(2026, 12, 1), "EUR")
    assert [(line.code, line.name, line.label, line.amount, line.start, line.end) for line in lines] == [
        ("usage:data", "Data", "2048 megabyte", D("3.00"), date(2026, 11, 1), date(2026, 12, 1)),
        ("usage:voice:national", "Calls – national", "25 minute, 100 included", D("12.35"),  # 25 over the allowance
         date(2026, 11, 1), date(2026, 12, 1)),
    ]
    assert calculate(replace(events, invoiced=invoiced(lines, "n")), date(2026, 12, 1), "EUR") == []  # never twice


def test_late_records_add_a_supplement_and_a_rerate_lower_credits_the_period():
    first = invoiced(calculate(Events(usage=(voice("12.35"),)), date(2026, 12, 1), "EUR"), "n")
    late = calculate(Events(usage=(voice("14.00", quantity="30"),), invoiced=first), date(2027, 1, 1), "EUR")
    assert [(line.amount, line.quantity, line.label, line.reverses) for line in late] == [
        (D("1.65"), D("5"), "5 minute", None)]  # 14.00 - 12.35, 5 more minutes priced
    held = first + invoiced(late, "l")
    lower = calculate(Events(usage=(voice("10.00", quantity="30"),), invoiced=held), date(2027, 1, 1), "EUR")
    # 10.00 - 14.00: taken back from the newest line first, each line at most what it billed
    assert sorted((line.amount, line.reverses) for line in lower) == [(D("-2.35"), "n0"), (D("-1.65"), "l0")]


def test_usage_a_credit_note_took_back_is_billed_again():
    first = invoiced(calculate(Events(usage=(voice("12.35"),)), date(2026, 12, 1), "EUR"), "n")
    reversal = replace(first[0], id="c0", amount=D("-12.35"), reverses="n0")
    again = calculate(Events(usage=(voice("12.35"),), invoiced=(*first, reversal)), date(2026, 12, 5), "EUR")
    assert [line.amount for line in again] == [D("12.35")]


def test_usage_whose_records_are_gone_is_credited():
    first = invoiced(calculate(Events(usage=(voice("12.35"),)), date(2026, 12, 1), "EUR"), "n")
    assert [(line.amount, line.reverses) for line in calculate(Events(invoiced=first), date(2027, 1, 1), "EUR")] == [
        (D("-12.35"), "n0")]
