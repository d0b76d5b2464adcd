"""A suspension and a resume inside one period, each seen by a run, leave the resumed days
billed once; later runs bill only the next periods.

30.00/month in advance, plan not billed during suspension. 1 Nov: 30.00 (Nov).
Suspended from 11 Nov -> run 11 Nov: -20.00 (11-30 Nov). Resumed from 21 Nov -> run 21 Nov: +10.00.
Right: November = 10 + 10 days = 20.00, and the 1 Dec run bills December only (30.00).
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_suspend_and_resume_in_one_period(vat, system):
    account = make_account()
    sub = subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    subscriptions.transition(system, sub, "suspend", date(2026, 11, 11))
    assert issued(system, billing.generate(system, account, date(2026, 11, 11)), date(2026, 11, 11)).net == D("-20.00")
    subscriptions.transition(system, sub, "resume", date(2026, 11, 21))
    assert issued(system, billing.generate(system, account, date(2026, 11, 21)), date(2026, 11, 21)).net == D("10.00")
    december = billing.generate(system, account, date(2026, 12, 1))
    got = [(str(l.service_start), str(l.service_end), l.amount) for l in december.lines.order_by("position")]
    assert december.net == D("30.00"), got
