"""Whatever happened and whenever the bill runs ran, the invoices end up agreeing with the events:
runs that knew less (an open-ended first plan, then part of the history), then the whole history,
then a run once every period is due; after it another run proposes nothing, and what was invoiced
in steps is what one run with the final events would invoice (up to a cent per line of rounding).
Prices come from a short list, so that days are billed, credited and billed again at one price."""
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from obol.billing.charges import ADVANCE, ARREARS, Events, RecurringCharge, Span, calculate
from obol.core.periods import Cycle

DAY0 = date(2026, 1, 1)


PRICES = [D("30.00"), D("60.00"), D("10.01")]  # few, so that a price comes back (billed, credited, billed again)


@st.composite
def histories(draw):
    start = DAY0 + timedelta(days=draw(st.integers(0, 200)))
    count = draw(st.integers(1, 4))
    prices = [draw(st.sampled_from(PRICES)) for _ in range(count)]
    spans, day = [], start
    for n, price in enumerate(prices):
        length = draw(st.integers(1, 90))
        last = n == count - 1
        end = None if last and draw(st.booleans()) else day + timedelta(days=length)
        spans.append(Span(day, end, price))
        if end is not None:
            day = end + timedelta(days=draw(st.sampled_from([0, 0, 5])))  # a gap: a suspension not billed
    cycle = Cycle("month", day=draw(st.integers(1, 31)))
    charge = RecurringCharge("S-1", "base", "Base", cycle, draw(st.sampled_from([ADVANCE, ARREARS])),
                             draw(st.booleans()), tuple(spans))
    # what the first bill runs knew: the first plan, open-ended (no change, no end yet); then part of it
    early = replace(charge, spans=(Span(start, None, prices[0]),))
    middle = replace(charge, spans=spans[:max(1, len(spans) // 2)])
    first = start + timedelta(days=draw(st.integers(0, 300)))
    second = first + timedelta(days=draw(st.integers(0, 200)))
    third = second + timedelta(days=draw(st.integers(0, 200)))
    return charge, (early, middle), (first, second, third)


@given(histories())
@settings(max_examples=300, deadline=None)
def test_repairs_bring_the_invoices_to_the_events(history):
    charge, (early, middle), (first, second, third) = history
    late = third + timedelta(days=400)  # every period up to here is due, in arrears too
    invoiced = []
    for target, known in ((first, early), (second, middle), (third, charge), (late, charge)):
        lines = calculate(Events(recurring=(known,), invoiced=tuple(invoiced)), target, "EUR")
        invoiced += [replace(line, id=f"L{len(invoiced) + n}") for n, line in enumerate(lines)]
    assert calculate(Events(recurring=(charge,), invoiced=tuple(invoiced)), late, "EUR") == []
    fresh = calculate(Events(recurring=(charge,)), late, "EUR")
    total = sum((line.amount for line in invoiced), D(0))
    assert abs(total - sum((line.amount for line in fresh), D(0))) <= D("0.01") * len(invoiced)
