"""A draft whose lines a later invoice already repairs cannot be cancelled before that invoice:
otherwise the repair's credit would stay with nothing left to reverse.

Nov 1 draft: 30.00 for November (plan A, 30/month), not issued yet. Plan change to B (60/month)
on 21 Nov; the Nov 21 run: -10.00 (A, 21-30 Nov, reverses the draft line) + 20.00 (B).
The clerk cancels the stale Nov 1 draft; the next run proposes A for 1-20 Nov: 20.00.
Right total: 20.00 (A, 20 days) + 20.00 (B, 10 days) = 40.00.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import Invoice, InvoiceLine
from obol.core.errors import IllegalTransition
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_cancelling_a_draft_that_a_later_invoice_repairs_is_refused(vat, system):
    account = make_account()
    sub = subscriptions.subscribe(system, account, make_plan("plan-a", price="30.00"), start_date=date(2026, 11, 1))
    first = billing.generate(system, account, date(2026, 11, 1))
    subscriptions.change_plan(system, sub, make_plan("plan-b", price="60.00"), date(2026, 11, 21))
    second = billing.generate(system, account, date(2026, 11, 21))
    assert sorted(line.amount for line in second.lines.all()) == [D("-10.00"), D("20.00")]
    with pytest.raises(IllegalTransition, match=f"invoice {second} repairs its lines; cancel that one first"):
        billing.cancel(system, first, reason="stale")
    billing.cancel(system, second)  # the repairing one first, then the first: the next run bills afresh
    billing.cancel(system, first)
    again = billing.generate(system, account, date(2026, 11, 22))
    assert sorted(line.amount for line in again.lines.all()) == [D("20.00"), D("20.00")]  # A 1-20, B 21-30 Nov
    live = InvoiceLine.objects.filter(invoice__account=account).exclude(invoice__state=Invoice.State.CANCELLED)
    assert sum(live.values_list("amount", flat=True)) == D("40.00")
