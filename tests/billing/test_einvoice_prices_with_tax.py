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
from tests.support.en16931 import official_failures

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


def test_vat_worked_out_from_the_gross_keeps_the_rules(vat, seller, system):
    """10.05 including 19%: VAT 10.05 x 19/119 = 1.6046 -> 1.60, net 8.45; from the net it would be
    8.45 x 19% = 1.6055 -> 1.61. The e-invoice is made all the same: the VAT is the rate's, rounded
    once, from the gross."""
    BillingSettings.objects.create(tenant=current_tenant(), prices_include_tax=True)
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="10.05"), start_date=date(2026, 11, 1))
    invoice = billing.issue(system, billing.accept(system, billing.generate(system, account, date(2026, 11, 1))),
                            date(2026, 11, 1))
    doc = einvoice.data(invoice)
    assert (doc["BG-23"][0]["BT-116"], doc["BG-23"][0]["BT-117"], doc["BT-112"]) == ("8.45", "1.60", "10.05")
    for xml in (einvoice.cii_xml(invoice), einvoice.ubl_xml(invoice)):
        assert einvoice.rule_findings(xml) == [] and official_failures(xml) == []
