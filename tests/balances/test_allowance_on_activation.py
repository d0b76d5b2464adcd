"""A subscription gets its first period's allowance as soon as it is activated; the daily job
then finds nothing left to grant for that period."""
from datetime import date

import pytest

from obol.balances import allowances
from obol.balances.models import Pocket
from obol.catalog.models import PricePlan
from obol.catalog.services import load_catalog
from obol.core.clock import frozen
from obol.core.money import Amount
from obol.subscriptions import services as subscriptions
from tests.factories import make_account

pytestmark = pytest.mark.django_db

CATALOG = """
catalog: 1
effective_from: 2025-01-01
services: [{code: voice, name: Voice, kind: voice, unit: second}]
plans: [{code: talk, name: Talk, allowances: [{service: voice, amount: 300, unit: minute}]}]
"""


def test_activation_grants_the_current_period_and_the_job_adds_nothing(in_tenant, system, clerk):
    load_catalog(CATALOG, source="test", actor=system)
    account = make_account(bill_cycle_day=1)
    with frozen(date(2026, 3, 5)):
        sub = subscriptions.subscribe(clerk, account, PricePlan.objects.get(code="talk"), start_date=date(2026, 3, 5))
    pocket = Pocket.objects.get(subscription=sub)
    assert Amount(pocket.balance, pocket.unit).convert("minute") == Amount(300, "minute")
    assert (pocket.period_start, pocket.period_end) == (date(2026, 3, 1), date(2026, 4, 1))
    assert allowances.grant_allowances(system, sub, date(2026, 3, 20)) == []
    assert Pocket.objects.filter(subscription=sub).count() == 1
