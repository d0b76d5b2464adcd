"""Changing an account's cycle day: the days already invoiced on the old cycle count on the new
one (invoiced lines are matched by their days, not by their period), so nothing is billed twice.

30.00/month in advance, cycle day 1, November invoiced (30.00). On 10 Nov the cycle day becomes
15. On 15 Nov the run should only add what is not yet billed: 1-14 Dec of the period
15 Nov-14 Dec = 14/30 x 30.00 = 14.00 (or equivalently credit/re-bill netting to that).
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.customers.services import update_account
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_changing_the_cycle_day_bills_days_twice(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    update_account(system, account, bill_cycle_day=15)
    account.refresh_from_db()
    after = billing.generate(system, account, date(2026, 11, 15))
    got = [(str(l.service_start), str(l.service_end), l.amount) for l in after.lines.order_by("position")]
    assert after.net == D("14.00"), got
