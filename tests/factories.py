"""Small builders for test data, written through the models (the services are what the tests test)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from obol.catalog.models import Charge, PricePlan, PricePlanVersion
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount, Customer


def make_plan(code="mobile-s", currency="EUR", effective_from=date(2026, 1, 1), price="9.99", **plan_fields):
    plan = PricePlan.objects.create(tenant=current_tenant(), code=code, name=code.title(), currency=currency,
                                    **plan_fields)
    version = PricePlanVersion.objects.create(tenant=plan.tenant, plan=plan, number=1,
                                              effective_from=effective_from, content_hash="test")
    Charge.objects.create(tenant=plan.tenant, version=version, code="monthly-fee", name="Monthly fee",
                          kind=Charge.Kind.RECURRING, price=Decimal(price), period="month", billing="advance",
                          prorate=True)
    return plan


def make_account(number="A-1", currency="EUR", customer=None, **fields):
    customer = customer or Customer.objects.create(tenant=current_tenant(), number=f"C-{number}", name="Ada Lovelace")
    return BillingAccount.objects.create(tenant=current_tenant(), number=number, customer=customer,
                                         currency=currency, **fields)
