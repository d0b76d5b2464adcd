"""Property: whatever sequence of grants, spends, top-ups, expiries and adjustments an account
goes through, every balance equals the sum of its ledger entries, and no pocket goes negative
unless the account's mode allows it (the accrual pocket, down to the credit limit)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obol.balances import services
from obol.balances.models import Pocket, Source
from obol.core.actors import Actor
from obol.core.clock import frozen
from obol.core.errors import ObolError
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from tests.factories import make_account

pytestmark = pytest.mark.django_db
START = datetime(2026, 1, 1, tzinfo=timezone.utc)

cents = st.integers(min_value=1, max_value=5000).map(lambda c: Decimal(c) / 100)
units = st.sampled_from(["second", "minute", "sms", "megabyte"])
operation = st.one_of(
    st.tuples(st.just("grant"), units, st.integers(1, 500), st.integers(0, 3), st.integers(0, 40)),
    st.tuples(st.just("spend_units"), units, st.integers(1, 400)),
    st.tuples(st.just("spend_money"), cents),
    st.tuples(st.just("spend_priced"), st.integers(1, 600), cents),
    st.tuples(st.just("top_up"), cents),
    st.tuples(st.just("adjust"), st.integers(-300, 300)),
    st.tuples(st.just("advance"), st.integers(1, 20)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["prepaid", "postpaid", "hybrid"]),
       limit=st.sampled_from([None, Decimal("0"), Decimal("25.00")]),
       operations=st.lists(operation, min_size=1, max_size=25))
def test_balances_always_equal_their_ledger(tenant, mode, limit, operations):
    actor = Actor.process("property")
    with tenant_context(tenant), transaction.atomic():
        account = make_account(number="P-1", mode=mode, credit_limit=limit)
        now = START
        for step, op in enumerate(operations):
            with frozen(now):
                try:
                    _apply(actor, account, op, step, now)
                except ObolError:
                    pass  # a refusal is an outcome; it must leave everything as it was
                if op[0] == "advance":
                    now += timedelta(days=op[1])
                    services.expire_pockets(actor, at=now)
            assert services.verify() == []
            for pocket in Pocket.objects.filter(account=account):
                if pocket.is_accrual:
                    owed = -pocket.balance
                    assert owed >= 0
                    if mode == "prepaid" or limit is not None:
                        assert owed <= (limit or 0)
                else:
                    assert pocket.balance >= 0, pocket
        transaction.set_rollback(True)


def _apply(actor, account, op, step, now):
    kind = op[0]
    if kind == "grant":
        _, unit, amount, priority, days = op
        services.open_pocket(actor, account, Amount(amount, unit), source=Source.PROMOTION, priority=priority,
                             valid_until=now + timedelta(days=days) if days else None)
    elif kind == "spend_units":
        services.spend(actor, account, Amount(op[2], op[1]), reference=f"u{step}")
    elif kind == "spend_money":
        services.spend(actor, account, Amount(op[1], "EUR"), reference=f"m{step}")
    elif kind == "spend_priced":
        services.spend(actor, account, Amount(op[1], "second"), reference=f"p{step}",
                       price=Amount(op[2], "EUR"), price_unit="minute")
    elif kind == "top_up":
        services.top_up(actor, account, Amount(op[1], "EUR"), reference=f"t{step}")
    elif kind == "adjust":  # alternately a unit pocket and the unbilled-usage pocket
        pockets = list(Pocket.objects.filter(account=account).order_by("pk"))
        pocket = pockets[step % len(pockets)] if pockets else None
        if pocket is not None:
            with transaction.atomic():
                services.adjust(actor, pocket, Decimal(op[1]), reason="property test")
