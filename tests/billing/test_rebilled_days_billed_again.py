"""Days billed, credited and billed again are covered by the new line only: each credit takes
days back from the line it names, so later runs bill nothing more.

(1) engine: 30.00/month from 1 Nov, in advance. Plan to 60.00 from 21 Nov, back to 30.00 from
    25 Nov (an upgrade undone four days later), one run on each of those days, then a run on 26 Nov.
    Right: Nov = 20 d x 1.00 + 4 d x 2.00 + 6 d x 1.00 = 20 + 8 + 6 = 34.00, and nothing more on 26 Nov.
    Actual: the 26 Nov run bills 25-30 Nov at 30.00 again (+6.00), and so on every run.
(2) services: a whole credit note on November, the next run re-bills November (30.00) - as the
    docs say - but the run after that bills November a THIRD time.
"""
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.charges import ADVANCE, Events, RecurringCharge, Span, calculate
from obol.billing.models import InvoiceLine
from obol.core.periods import Cycle
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan


def charge(*spans):
    return RecurringCharge("S-1", "base", "Base", Cycle("month", day=1), ADVANCE, True, tuple(spans))


def test_upgrade_then_downgrade_in_one_period_keeps_billing_the_last_days():
    a1 = Span(date(2026, 11, 1), None, D("30.00"))
    a2 = (Span(date(2026, 11, 1), date(2026, 11, 21), D("30.00")), Span(date(2026, 11, 21), None, D("60.00")))
    a3 = (Span(date(2026, 11, 1), date(2026, 11, 21), D("30.00")),
          Span(date(2026, 11, 21), date(2026, 11, 25), D("60.00")), Span(date(2026, 11, 25), None, D("30.00")))
    invoiced = []
    for day, spans in ((date(2026, 11, 1), (a1,)), (date(2026, 11, 21), a2), (date(2026, 11, 25), a3)):
        lines = calculate(Events(recurring=(charge(*spans),), invoiced=tuple(invoiced)), day, "EUR")
        invoiced += [replace(line, id=f"L{len(invoiced) + n}") for n, line in enumerate(lines)]
    assert sum(line.amount for line in invoiced) == D("34.00")
    again = calculate(Events(recurring=(charge(*a3),), invoiced=tuple(invoiced)), date(2026, 11, 26), "EUR")
    assert again == []  # actual: [+6.00 for 25 Nov - 1 Dec]


@pytest.mark.django_db
def test_after_a_whole_credit_note_november_is_billed_again_and_again(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    november = issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    issued(system, billing.credit_note(system, november, reason="wrong address"), date(2026, 11, 5))
    issued(system, billing.generate(system, account, date(2026, 11, 5)), date(2026, 11, 5))  # re-bill: 30.00
    third = billing.generate(system, account, date(2026, 11, 6))
    total = sum(InvoiceLine.objects.filter(invoice__account=account).values_list("amount", flat=True))
    assert third is None, f"November billed again: {third.net}; total so far {total}"
