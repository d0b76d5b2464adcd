"""PostgreSQL: many sessions at once on one prepaid pocket never spend more than it holds."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from obol.balances import services as balances
from obol.balances.models import LedgerEntry, Pocket
from obol.charging import service as charging
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from tests.support.race import race
from tests.usage.test_import_pipeline import prepare

TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
MOBILE, PREPAID = "491701234567", "491522222222"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_64_sessions_on_one_pocket_of_10_eur_each_spending_1_eur(tenant, system, clerk):
    with tenant_context(tenant):
        prepare(tenant, system, clerk)
        account = Pocket.objects.get(source="topup", account__number="A-2").account
        balances.top_up(system, account, Amount("9.00", "EUR"), reference="PAY-2")  # 10.00 in all

    def call(i):
        started = charging.start(system, request_id=f"s-{i}", subscriber=PREPAID, service="voice",
                                 destination=MOBILE, requested=600)  # 10 minutes at 0.10 = 1.00
        if started.code != "ok":
            return started.code, Decimal(0)
        ended = charging.terminate(system, started.session_id, request_id=f"t-{i}", used=started.granted)
        return ended.code, ended.charged

    results = race(tenant, [lambda i=i: call(i) for i in range(64)], at=TUESDAY_10)
    committed = sum(charged for _, charged in results)
    with tenant_context(tenant):
        balance = Pocket.objects.get(source="topup", account__number="A-2").balance
        assert committed <= Decimal("10.00")
        assert balance == Decimal("10.00") - committed
        # every grant was a whole 1.00 and was used: exactly ten calls got through
        assert sorted(code for code, _ in results) == ["no_credit"] * 54 + ["ok"] * 10
        assert committed == Decimal("10.00")
        assert LedgerEntry.objects.filter(kind="debit", pocket__account__number="A-2").count() == 10
        assert balances.verify() == []
