"""32 threads spending from one pocket at once (PostgreSQL): the balance ends exactly at the
start minus what was accepted, never below zero, and the ledger still adds up."""
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from obol.balances import services
from obol.core.actors import Actor
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_32_threads_spending_one_pocket(tenant):
    actor = Actor.process("test")
    with tenant_context(tenant):
        account = make_account(mode="prepaid")
        services.top_up(actor, account, Amount("10.00", "EUR"), reference="PAY-1")
    barrier = threading.Barrier(32)
    accepted, refused, errors = [], [], []

    def spend(i):
        try:
            with tenant_context(tenant):
                barrier.wait()
                amount = Decimal("0.45") + Decimal(i % 3) / 10  # 0.45, 0.55, 0.65: 32 of them exceed 10.00
                try:
                    services.spend(actor, account, Amount(amount, "EUR"), reference=f"event-{i}")
                    accepted.append(amount)
                except services.SpendRefused:
                    refused.append(amount)
        except Exception as exc:  # noqa: BLE001 - a deadlock or a lost update must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(accepted) + len(refused) == 32 and refused
    with tenant_context(tenant):
        balance = services.money_pocket(actor, account).balance
        assert balance == Decimal("10.00") - sum(accepted) and balance >= 0
        assert all(amount > balance for amount in refused)  # each refusal was right when it was made
        assert services.verify() == []
