"""Partial credit notes of one invoice never take back more VAT than it charged: each note's VAT
is that of everything credited so far, less what the earlier notes took.

Invoice: one line 25.00 at 19% -> VAT 4.75, gross 29.75.
Two partial notes of 12.50 each (the whole line): VAT 12.50 x 19% = 2.375 -> 2.38 each.
Credited gross 2 x 14.88 = 29.76 > 29.75; VAT 4.76 > 4.75 (0.01 of VAT refunded that was never
charged), and the second note is left with -0.01 open.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import Invoice
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_partial_credit_notes_never_credit_more_vat_than_the_invoice(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="25.00"), start_date=date(2026, 11, 1))
    invoice = issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    assert (invoice.tax, invoice.gross) == (D("4.75"), D("29.75"))
    line = invoice.lines.get()
    for _ in range(2):
        issued(system, billing.credit_note(system, invoice, {line.pk: D("12.50")}), date(2026, 11, 5))
    notes = Invoice.objects.filter(kind="credit_note")
    assert -sum(n.tax for n in notes) <= invoice.tax  # actual 4.76
    assert -sum(n.gross for n in notes) <= invoice.gross  # actual 29.76
