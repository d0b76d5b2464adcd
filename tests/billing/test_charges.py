"""Charge calculation (billing/charges.py): the issue's worked examples, computed by hand, and the
repairs that keep invoices in agreement with what happened, whatever the order of the bill runs."""
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing.charges import (
    ADVANCE,
    ARREARS,
    Events,
    Line,
    OneTimeCharge,
    RecurringCharge,
    Span,
    calculate,
)
from obol.core.periods import Cycle

MONTHLY_DAY_1 = Cycle("month", day=1)


def monthly(*spans, billing=ADVANCE, prorate=True, cycle=MONTHLY_DAY_1, code="base"):
    return RecurringCharge("S-1", code, "Base fee", cycle, billing, prorate, tuple(spans))


def invoiced(lines, prefix="i"):
    """The lines as an earlier invoice holds them (with ids; credits keep their `reverses`)."""
    return tuple(replace(line, id=f"{prefix}{n}") for n, line in enumerate(lines))


def summary(lines):
    return [(str(line.start), str(line.end), line.amount) for line in lines]


def test_activation_mid_month_in_advance_bills_the_rest_of_november_then_december():
    charge = monthly(Span(date(2026, 11, 16), None, D("30.00")))
    first = calculate(Events(recurring=(charge,)), date(2026, 11, 16), "EUR")
    assert summary(first) == [("2026-11-16", "2026-12-01", D("15.00"))]  # 15 of 30 days
    second = calculate(Events(recurring=(charge,), invoiced=invoiced(first)), date(2026, 12, 1), "EUR")
    assert summary(second) == [("2026-12-01", "2027-01-01", D("30.00"))]
    # the same bill run again: nothing more
    again = calculate(Events(recurring=(charge,), invoiced=invoiced(first + second)), date(2026, 12, 1), "EUR")
    assert again == []


def test_back_dated_termination_credits_the_days_billed_in_advance():
    december = Line("S-1", "base", "Base fee", "recurring", D("31.00"), date(2026, 12, 1), date(2027, 1, 1),
                    per_period=D("31.00"), period=MONTHLY_DAY_1.period_containing(date(2026, 12, 1)))
    charge = monthly(Span(date(2026, 1, 1), date(2026, 12, 11), D("31.00")))  # terminated with effect from 11 Dec
    earlier = tuple(replace(line, id=f"m{n}") for n, line in enumerate(
        calculate(Events(recurring=(monthly(Span(date(2026, 1, 1), None, D("31.00"))),)), date(2026, 11, 1), "EUR")))
    lines = calculate(Events(recurring=(charge,), invoiced=earlier + invoiced([december], "d")), date(2027, 1, 1),
                      "EUR")
    assert summary(lines) == [("2026-12-11", "2027-01-01", D("-21.00"))]  # 21 of December's 31 days
    assert lines[0].reverses == "d0"


def test_plan_change_mid_month_credits_the_old_plan_and_charges_the_new_one():
    november = Line("S-1", "base", "Base fee", "recurring", D("30.00"), date(2026, 11, 1), date(2026, 12, 1),
                    per_period=D("30.00"), period=MONTHLY_DAY_1.period_containing(date(2026, 11, 1)), id="n1",
                    label="Plan A")
    charge = monthly(Span(date(2026, 11, 1), date(2026, 11, 21), D("30.00"), "Plan A"),
                     Span(date(2026, 11, 21), None, D("60.00"), "Plan B"))
    lines = calculate(Events(recurring=(charge,), invoiced=(november,)), date(2026, 11, 21), "EUR")
    assert [(line.label, str(line.start), str(line.end), line.amount) for line in lines] == [
        ("Plan A", "2026-11-21", "2026-12-01", D("-10.00")),  # 10 of 30 days of 30.00
        ("Plan B", "2026-11-21", "2026-12-01", D("20.00")),  # 10 of 30 days of 60.00
    ]


def test_in_arrears_bills_the_days_used_after_the_period():
    charge = monthly(Span(date(2026, 11, 10), None, D("30.00")), billing=ARREARS)
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 30), "EUR") == []  # November not over yet
    lines = calculate(Events(recurring=(charge,)), date(2026, 12, 1), "EUR")
    assert summary(lines) == [("2026-11-10", "2026-12-01", D("21.00"))]  # 21 of 30 days


def test_in_arrears_a_termination_makes_the_last_part_due_when_it_ends():
    charge = monthly(Span(date(2026, 11, 1), date(2026, 11, 16), D("30.00")), billing=ARREARS)
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 15), "EUR") == []
    lines = calculate(Events(recurring=(charge,)), date(2026, 11, 16), "EUR")
    assert summary(lines) == [("2026-11-01", "2026-11-16", D("15.00"))]


def test_a_cycle_day_of_31_bills_february_by_its_own_days():
    cycle = Cycle("month", day=31)
    charge = monthly(Span(date(2027, 2, 14), None, D("28.00")), cycle=cycle)
    lines = calculate(Events(recurring=(charge,)), date(2027, 2, 14), "EUR")
    # the period is 31 Jan - 27 Feb (28 days); 14-27 Feb is 14 of them
    assert summary(lines) == [("2027-02-14", "2027-02-28", D("14.00"))]
    lines = calculate(Events(recurring=(charge,), invoiced=invoiced(lines)), date(2027, 2, 28), "EUR")
    assert summary(lines) == [("2027-02-28", "2027-03-31", D("28.00"))]  # 28 Feb - 30 Mar, whole


def test_a_quantity_change_is_repaired_like_a_plan_change():
    charge = monthly(Span(date(2026, 11, 1), date(2026, 11, 11), D("30.00"), "3 lines"),
                     Span(date(2026, 11, 11), None, D("50.00"), "5 lines"))
    first = invoiced([Line("S-1", "base", "Lines", "recurring", D("30.00"), date(2026, 11, 1), date(2026, 12, 1),
                           per_period=D("30.00"), period=MONTHLY_DAY_1.period_containing(date(2026, 11, 1)))])
    lines = calculate(Events(recurring=(charge,), invoiced=first), date(2026, 11, 11), "EUR")
    assert summary(lines) == [("2026-11-11", "2026-12-01", D("-20.00")),  # 20 of 30 days of 30.00
                              ("2026-11-11", "2026-12-01", D("33.33"))]  # 20 of 30 days of 50.00 = 33.333...


def test_credits_of_one_item_in_two_steps_add_up_to_exactly_the_item():
    period = MONTHLY_DAY_1.period_containing(date(2026, 11, 1))
    item = Line("S-1", "base", "Base fee", "recurring", D("10.00"), date(2026, 11, 1), date(2026, 12, 1),
                per_period=D("10.00"), period=period, id="x")
    first = calculate(Events(recurring=(monthly(Span(date(2026, 11, 1), date(2026, 11, 21), D("10.00"))),),
                             invoiced=(item,)), date(2026, 11, 30), "EUR")
    assert summary(first) == [("2026-11-21", "2026-12-01", D("-3.33"))]
    # the termination moves back again, to 1 November: the rest of the item is credited exactly
    second = calculate(Events(recurring=(monthly(Span(date(2026, 10, 1), date(2026, 11, 1), D("10.00"))),),
                              invoiced=(item, replace(first[0], id="c1"))), date(2026, 11, 30), "EUR")
    nov = [line for line in second if line.period == period]
    assert summary(nov) == [("2026-11-01", "2026-11-21", D("-6.67"))]
    assert item.amount + first[0].amount + nov[0].amount == 0


def test_without_proration_a_period_is_billed_whole_and_an_ending_credits_nothing():
    charge = monthly(Span(date(2026, 11, 16), date(2026, 12, 11), D("30.00")), prorate=False)
    lines = calculate(Events(recurring=(charge,)), date(2026, 12, 1), "EUR")
    assert summary(lines) == [("2026-11-01", "2026-12-01", D("30.00")), ("2026-12-01", "2027-01-01", D("30.00"))]
    assert calculate(Events(recurring=(charge,), invoiced=invoiced(lines)), date(2027, 1, 1), "EUR") == []


def test_a_suspension_the_plan_does_not_bill_is_a_gap_in_the_spans():
    charge = monthly(Span(date(2026, 11, 1), date(2026, 11, 11), D("30.00")),
                     Span(date(2026, 11, 21), None, D("30.00")))
    lines = calculate(Events(recurring=(charge,)), date(2026, 11, 1), "EUR")
    assert summary(lines) == [("2026-11-01", "2026-11-11", D("10.00")), ("2026-11-21", "2026-12-01", D("10.00"))]


def test_one_time_charges_are_billed_once_and_credited_when_withdrawn():
    fee = OneTimeCharge("S-1", "setup", "Set-up fee", date(2026, 11, 16), D("49.90"))
    assert calculate(Events(one_time=(fee,)), date(2026, 11, 15), "EUR") == []
    lines = calculate(Events(one_time=(fee,)), date(2026, 11, 16), "EUR")
    assert summary(lines) == [("2026-11-16", "2026-11-17", D("49.90"))]
    assert calculate(Events(one_time=(fee,), invoiced=invoiced(lines)), date(2026, 12, 1), "EUR") == []
    withdrawn = calculate(Events(one_time=(), invoiced=invoiced(lines)), date(2026, 12, 1), "EUR")
    assert summary(withdrawn) == [("2026-11-16", "2026-11-17", D("-49.90"))]


def test_amounts_are_rounded_per_line_with_the_tenants_rule():
    charge = monthly(Span(date(2026, 11, 2), None, D("0.30")))  # 29/30 x 0.30 = 0.29
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 2), "EUR")[0].amount == D("0.29")
    charge = monthly(Span(date(2026, 11, 16), None, D("0.05")))  # 15/30 x 0.05 = 0.025
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 16), "EUR", "half_up")[0].amount == D("0.03")
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 16), "EUR", "half_even")[0].amount == D("0.02")
    assert calculate(Events(recurring=(charge,)), date(2026, 11, 16), "JPY")[0].amount == D("0")


def test_a_charge_billed_neither_in_advance_nor_in_arrears_is_refused():
    with pytest.raises(Exception, match="billing"):
        monthly(Span(date(2026, 11, 1), None, D("1")), billing="monthly")
