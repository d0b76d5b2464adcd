"""A plan version that changes a charge's billing or proration keeps the charge (by its code):
the periods already invoiced stay as they are, and the new terms apply from the version on.

Plan 30.00/month in advance, prorated, from 1 Nov; November and December invoiced (60.00).
Version 2 from 1 Jan 2027: the same charge, not prorated (a catalog clean-up).
On 1 Jan the run should bill January only: 30.00.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.catalog.models import Charge, PricePlanVersion
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_a_new_version_that_stops_prorating_bills_history_again(vat, system):
    plan = make_plan("basic", price="30.00")
    account = make_account()
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 1))
    for day in (date(2026, 11, 1), date(2026, 12, 1)):
        issued(system, billing.generate(system, account, day), day)
    v2 = PricePlanVersion.objects.create(tenant=plan.tenant, plan=plan, number=2, effective_from=date(2027, 1, 1),
                                         content_hash="v2")
    Charge.objects.create(tenant=plan.tenant, version=v2, code="monthly-fee", name="Monthly fee",
                          kind=Charge.Kind.RECURRING, price=D("30.00"), period="month", billing="advance",
                          prorate=False)
    january = billing.generate(system, account, date(2027, 1, 1))
    got = [(l.charge_code, str(l.service_start), l.amount) for l in january.lines.order_by("position")]
    assert january.net == D("30.00"), got


def test_and_the_two_renamed_charges_then_fight_over_january_forever(vat, system):
    """Both keys differ only in `prorate`, so both become 'monthly-fee/month/advance': the old
    (prorated) charge, which ends on 1 Jan, credits the January line of the new one, and the new one
    bills it again, run after run: -30.00, +30.00, -30.00, ... (a repair that never converges)."""
    plan = make_plan("basic", price="30.00")
    account = make_account()
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 1))
    v2 = PricePlanVersion.objects.create(tenant=plan.tenant, plan=plan, number=2, effective_from=date(2027, 1, 1),
                                         content_hash="v2")
    Charge.objects.create(tenant=plan.tenant, version=v2, code="monthly-fee", name="Monthly fee",
                          kind=Charge.Kind.RECURRING, price=D("30.00"), period="month", billing="advance",
                          prorate=False)
    nets = []
    for day in (date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3), date(2027, 1, 4)):
        invoice = billing.generate(system, account, day)
        nets.append(invoice.net if invoice else None)
        if invoice:
            issued(system, invoice, day)
    # first run: Nov + Dec + Jan (90.00); afterwards nothing should be due
    assert nets[1:] == [None, None, None], nets  # actual: [-30, 30, -30]
