"""After a plan change, the new plan's days are billed with the new plan's charge: its tax
category, revenue account and name.

Plan A: 30.00/month, standard VAT (19%), product revenue 8400. Plan B: 60.00/month, tax
category 'reduced' (7%), product revenue 8410. Change on 21 Nov, November billed on A.
Expected new line: +20.00 (B, 21-30 Nov) at 7%, revenue 8410.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import TaxRate
from obol.catalog.models import Charge, Product
from obol.core.tenancy import current_tenant
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_new_plans_days_use_the_new_plans_tax_category_and_revenue_account(vat, system):
    TaxRate.objects.create(tenant=current_tenant(), country="DE", category="reduced", rate=D("7"),
                           valid_from=date(2020, 1, 1))
    a, b = make_plan("plan-a", price="30.00"), make_plan("plan-b", price="60.00")
    pa = Product.objects.create(tenant=current_tenant(), code="a", name="a", revenue_account="8400")
    pb = Product.objects.create(tenant=current_tenant(), code="b", name="b", revenue_account="8410")
    Charge.objects.filter(version__plan=a).update(product=pa)
    Charge.objects.filter(version__plan=b).update(product=pb, tax_category="reduced")
    account = make_account()
    sub = subscriptions.subscribe(system, account, a, start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    subscriptions.change_plan(system, sub, b, date(2026, 11, 21))
    change = billing.generate(system, account, date(2026, 11, 21))
    new = change.lines.get(amount=D("20.00"))
    assert (new.label, new.tax_category, new.tax_rate, new.revenue_account) == ("Plan-B", "reduced", D("7"), "8410")
