"""A whole credit note of an invoice whose line a later invoice already partly repaired takes
back only what is left of the line (the repair counts), so the next run bills nothing twice.

December 31.00 invoiced; terminated from 11 Dec -> Jan invoice credits 21.00 (11-31 Dec).
Then a whole credit note on December (e.g. wrong address) and the next run.
Right result: customer owes 10 days of December = 10.00 net in total.
31.00 - 21.00 (repair) - 31.00 (whole CN) + 10.00 (re-bill 1-10 Dec) = -11.00 -> over-credited by 21.00.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import InvoiceLine
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_whole_credit_note_after_a_repair_over_credits(vat, system):
    account = make_account()
    sub = subscriptions.subscribe(system, account, make_plan("basic", price="31.00"), start_date=date(2026, 12, 1))
    december = issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    subscriptions.transition(system, sub, "terminate", date(2026, 12, 11))
    january = issued(system, billing.generate(system, account, date(2027, 1, 1)), date(2027, 1, 1))
    assert january.net == D("-21.00")
    note = billing.credit_note(system, december, reason="wrong address")  # should only reverse what is left (10.00)
    issued(system, note, date(2027, 1, 5))
    again = billing.generate(system, account, date(2027, 1, 5))
    if again is not None:
        issued(system, again, date(2027, 1, 5))
    total = sum(InvoiceLine.objects.filter(invoice__account=account).values_list("amount", flat=True))
    assert total == D("10.00")  # actual: -11.00
