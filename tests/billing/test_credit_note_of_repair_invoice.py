"""A whole credit note of an invoice that holds a repair credit undoes that credit (its +21.00
reverses the -21.00), so the next run proposes the repair again: the days stay credited.

December 31.00; terminated from 11 Dec -> Jan invoice: -21.00. Whole CN of the Jan invoice
(e.g. wrong address): +21.00. The docs say the CN'd days count as not invoiced, so the next run
must credit 11-31 Dec again: -21.00, leaving a total of 10.00 (10 days of Dec).
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


def test_whole_credit_note_of_a_repair_invoice_is_never_repaired_again(vat, system):
    account = make_account()
    sub = subscriptions.subscribe(system, account, make_plan("basic", price="31.00"), start_date=date(2026, 12, 1))
    issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    subscriptions.transition(system, sub, "terminate", date(2026, 12, 11))
    january = issued(system, billing.generate(system, account, date(2027, 1, 1)), date(2027, 1, 1))
    issued(system, billing.credit_note(system, january, reason="wrong address"), date(2027, 1, 5))
    again = billing.generate(system, account, date(2027, 1, 5))
    assert again is not None, "the reversed -21.00 repair is never proposed again"
    issued(system, again, date(2027, 1, 5))
    total = sum(InvoiceLine.objects.filter(invoice__account=account).values_list("amount", flat=True))
    assert total == D("10.00")
