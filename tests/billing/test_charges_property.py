"""Whatever happened and whenever the bill runs ran, the invoices end up agreeing with the events:
a run after the repairs proposes nothing, and what was invoiced in steps is what one run with the
final events would invoice (up to a cent per line of rounding)."""
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from obol.billing.charges import ADVANCE, ARREARS, Events, RecurringCharge, Span, calculate
from obol.core.periods import Cycle

DAY0 = date(2026, 1, 1)


@st.composite
def histories(draw):
    start = DAY0 + timedelta(days=draw(st.integers(0, 200)))
    prices = [D(draw(st.integers(1, 100_000))) / 100 for _ in range(draw(st.integers(1, 3)))]
    gaps = sorted(draw(st.lists(st.integers(1, 120), min_size=len(prices) - 1, max_size=len(prices) - 1,
                                unique=True)))
    bounds = [start] + [start + timedelta(days=g) for g in gaps]
    ends = bounds[1:] + [start + timedelta(days=draw(st.integers(gaps[-1] + 1 if gaps else 1, 400)))
                         if draw(st.booleans()) else None]
    spans = tuple(Span(b, e, p) for b, e, p in zip(bounds, ends, prices, strict=True))
    cycle = Cycle("month", day=draw(st.integers(1, 31)))
    charge = RecurringCharge("S-1", "base", "Base", cycle, draw(st.sampled_from([ADVANCE, ARREARS])),
                             draw(st.booleans()), spans)
    # what the first bill runs knew: the first plan, open-ended (no change, no end yet)
    early = replace(charge, spans=(Span(start, None, prices[0]),))
    first = start + timedelta(days=draw(st.integers(0, 300)))
    second = first + timedelta(days=draw(st.integers(0, 300)))
    return charge, early, first, second


@given(histories())
@settings(max_examples=300, deadline=None)
def test_repairs_bring_the_invoices_to_the_events(history):
    charge, early, first, second = history
    invoiced = []
    for target, known in ((first, early), (second, charge)):
        lines = calculate(Events(recurring=(known,), invoiced=tuple(invoiced)), target, "EUR")
        invoiced += [replace(line, id=f"L{len(invoiced) + n}") for n, line in enumerate(lines)]
    assert calculate(Events(recurring=(charge,), invoiced=tuple(invoiced)), second, "EUR") == []
    fresh = calculate(Events(recurring=(charge,)), second, "EUR")
    total = sum((line.amount for line in invoiced), D(0))
    assert abs(total - sum((line.amount for line in fresh), D(0))) <= D("0.01") * len(invoiced)
