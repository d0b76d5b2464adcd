"""Discounts on invoices, the pure part (billing/discounts.py): percent, a fixed amount per month,
first period free, for their window; repaired with the charges; never twice. Amounts by hand."""
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing.charges import Events, OneTimeCharge, RecurringCharge, Span, calculate
from obol.billing.discounts import Discount
from obol.core.errors import ValidationFailed
from obol.core.periods import Cycle

MONTHLY = Cycle("month", day=1)


def fee(start=date(2026, 11, 16), end=None, price="30.00"):
    return RecurringCharge("1", "monthly-fee", "Monthly fee", MONTHLY, "advance", True, (Span(start, end, D(price)),))


def twenty_percent(**terms):
    return Discount("discount:9", "Spring offer (SAVE20)", "1", "percent", date(2026, 11, 16), date(2027, 5, 16),
                    percent=D("20"), **terms)


def runs(events, *days):
    """Bill on each day, counting each run's lines as invoiced; the lines of every run."""
    invoiced, out = list(events.invoiced), []
    for n, day in enumerate(days):
        lines = [replace(line, id=f"r{n}.{k}") for k, line in enumerate(
            calculate(replace(events, invoiced=tuple(invoiced)), day, "EUR"))]
        invoiced += lines
        out.append([(line.kind, line.amount) for line in lines])
    return out, invoiced


def test_a_percentage_follows_the_charges_over_its_window():
    months = [date(2026, 11, 16)] + [date(2026 + (m > 12), (m - 1) % 12 + 1, 1) for m in range(12, 18)]
    out, _ = runs(Events(recurring=(fee(),), discounts=(twenty_percent(),)), *months)
    assert out[0] == [("recurring", D("15.00")), ("discount", D("-3.00"))]  # 20% of 16-30 November
    assert out[1:6] == [[("recurring", D("30.00")), ("discount", D("-6.00"))]] * 5  # December to April
    # May: 15 of its 31 days are inside the window (to 16 May): 20% of (15.00 + 150.00 + 30 x 15/31) = 35.903
    # rounds to 35.90 over the window, of which 33.00 was given
    assert out[6] == [("recurring", D("30.00")), ("discount", D("-2.90"))]
    assert runs(Events(recurring=(fee(),), discounts=(twenty_percent(),)), *months, date(2026, 12, 1))[0][-1] == []


def test_a_fixed_amount_per_month_is_never_more_than_the_charges():
    five_off = Discount("discount:9", "Welcome", "1", "amount", date(2026, 11, 16), date(2027, 1, 16), amount=D("5.00"),
                        currency="EUR")
    out, _ = runs(Events(recurring=(fee(price="3.00"),), discounts=(five_off,)),
                  date(2026, 11, 16), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1))
    assert out[0] == [("recurring", D("1.50")), ("discount", D("-1.50"))]  # 16-30 Nov: 1.50 of charges, 1.50 off
    # the first month (16 Nov - 15 Dec) also holds 1-15 December: 3.00 x 15/31 = 1.45 more off
    assert out[1] == [("recurring", D("3.00")), ("discount", D("-1.45"))]
    # the second month (16 Dec - 15 Jan): 3.00 x 16/31 + 3.00 x 15/31 = 3.00 of charges, all off
    assert out[2] == [("recurring", D("3.00")), ("discount", D("-3.00"))]
    assert out[3] == [("recurring", D("3.00"))]  # the window is over


def test_the_first_period_free():
    free = Discount("discount:9", "First month free", "1", "first_period_free", date(2026, 11, 16),
                    date(2026, 12, 1))
    out, _ = runs(Events(recurring=(fee(),), discounts=(free,)), date(2026, 11, 16), date(2026, 12, 1))
    assert out == [[("recurring", D("15.00")), ("discount", D("-15.00"))], [("recurring", D("30.00"))]]


def test_a_back_dated_termination_gives_back_its_discount_too():
    _, invoiced = runs(Events(recurring=(fee(start=date(2026, 12, 1), price="31.00"),), discounts=(
        twenty_percent(),)), date(2026, 12, 1))
    assert [(line.kind, line.amount) for line in invoiced] == [("recurring", D("31.00")), ("discount", D("-6.20"))]
    ended = Events(recurring=(fee(start=date(2026, 12, 1), end=date(2026, 12, 11), price="31.00"),),
                   discounts=(twenty_percent(),), invoiced=tuple(invoiced))
    assert [(line.kind, line.amount) for line in calculate(ended, date(2027, 1, 1), "EUR")] == [
        ("recurring", D("-21.00")), ("discount", D("4.20"))]  # 20% of the 21.00 credited


def test_only_the_charges_it_names_are_discounted():
    activation = OneTimeCharge("1", "activation", "Activation fee", date(2026, 11, 16), D("10.00"))
    events = Events(recurring=(fee(),), one_time=(activation,),
                    discounts=(twenty_percent(charge_codes=("monthly-fee",)),))
    lines = calculate(events, date(2026, 11, 16), "EUR")
    assert [(line.code, line.amount) for line in lines if line.kind == "discount"] == [("discount:9", D("-3.00"))]
    every = calculate(replace(events, discounts=(twenty_percent(),)), date(2026, 11, 16), "EUR")
    assert [line.amount for line in every if line.kind == "discount"] == [D("-5.00")]  # 20% of 15.00 + 10.00


def test_an_amount_in_another_currency_is_refused_naming_the_promotion():
    usd = Discount("discount:9", "Welcome (WELCOME)", "1", "amount", date(2026, 11, 16), date(2027, 1, 16),
                   amount=D("5.00"), currency="USD")
    with pytest.raises(ValidationFailed, match="Welcome \\(WELCOME\\) takes 5.00 USD off, not in the account's currency EUR"):
        calculate(Events(recurring=(fee(),), discounts=(usd,)), date(2026, 11, 16), "EUR")


def test_a_fixed_amount_for_a_month_cut_short_is_shared_by_days():
    # 6.00 off a month from 1 November, cancelled from 11 December: December's window is 1-10 December,
    # 10 of its 31 days: 6.00 x 10/31 = 1.935... -> 1.94 (and December's 31.00 is more than enough)
    cut = Discount("discount:9", "Welcome", "1", "amount", date(2026, 11, 1), date(2026, 12, 11), amount=D("6.00"),
                   currency="EUR")
    out, _ = runs(Events(recurring=(fee(start=date(2026, 11, 1), price="31.00"),), discounts=(cut,)),
                  date(2026, 11, 1), date(2026, 12, 1))
    assert out == [[("recurring", D("31.00")), ("discount", D("-6.00"))],
                   [("recurring", D("31.00")), ("discount", D("-1.94"))]]
