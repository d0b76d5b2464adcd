"""With prices including tax, the e-invoice's lines are net (each VAT row's net spread over its
lines), so BT-106 = sum(BT-131) = BT-109 as EN 16931 BR-CO-10/13 ask.
"""
from datetime import date

import pytest

from obol.billing import einvoice
from obol.billing import services as billing
from obol.billing.models import BillingSettings
from obol.core.tenancy import current_tenant
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_line_totals_are_net_with_prices_including_tax(vat, system):
    BillingSettings.objects.create(tenant=current_tenant(), prices_include_tax=True)
    account = make_account()
    for code in ("basic", "extra"):
        subscriptions.subscribe(system, account, make_plan(code, price="11.90"), start_date=date(2026, 11, 1))
    invoice = billing.issue(system, billing.accept(system, billing.generate(system, account, date(2026, 11, 1))),
                            date(2026, 11, 1))
    doc = einvoice.data(invoice)
    assert (doc["BT-109"], doc["BT-110"], doc["BT-112"]) == ("20.00", "3.80", "23.80")
    assert doc["BT-106"] == doc["BT-109"]  # actual 23.80 != 20.00
