"""Subscription lifecycle: states with effective dates, plan and quantity changes, audit trail."""
from datetime import date
from decimal import Decimal

import pytest

from obol.core.audit import history
from obol.core.errors import Forbidden, IllegalTransition, ValidationFailed
from obol.subscriptions import services
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(in_tenant):
    return make_account()


@pytest.fixture
def plan(in_tenant):
    return make_plan()


def test_full_lifecycle_with_effective_dates_and_audit(account, plan, clerk):
    sub = services.subscribe(clerk, account, plan, start_date=date(2026, 3, 1), quantity=2)
    sub = services.transition(clerk, sub, "suspend", date(2026, 4, 10), "unpaid invoice")
    sub = services.transition(clerk, sub, "resume", date(2026, 4, 20), "paid")
    sub = services.transition(clerk, sub, "terminate", date(2026, 6, 1), "customer left")

    assert sub.status == "terminated" and sub.end_date == date(2026, 6, 1)
    assert services.state_at(sub, date(2026, 2, 28)) is None
    assert services.state_at(sub, date(2026, 3, 1)).status == "active"
    assert services.state_at(sub, date(2026, 4, 15)).status == "suspended"
    assert services.state_at(sub, date(2026, 5, 31)).status == "active"
    assert services.state_at(sub, date(2026, 6, 1)).status == "terminated"

    actions = [e.action for e in history(sub).order_by("at", "id")]
    assert actions == [
        "subscription.create", "subscription.activate", "subscription.suspend",
        "subscription.resume", "subscription.terminate",
    ]
    suspend = history(sub).get(action="subscription.suspend")
    assert suspend.actor_label == "clerk@acme"
    assert suspend.reason == "unpaid invoice"
    assert suspend.changes == {"effective_date": "2026-04-10", "status": ["active", "suspended"]}


def test_terminated_cannot_be_activated_again(account, plan, clerk):
    sub = services.subscribe(clerk, account, plan, start_date=date(2026, 3, 1))
    sub = services.transition(clerk, sub, "terminate", date(2026, 3, 31))
    with pytest.raises(IllegalTransition, match="is terminated; cannot activate"):
        services.transition(clerk, sub, "activate", date(2026, 4, 1))
    with pytest.raises(IllegalTransition, match="cannot resume"):
        services.transition(clerk, sub, "resume", date(2026, 4, 1))
    sub.refresh_from_db()
    assert sub.status == "terminated"
    assert [c.kind for c in sub.changes.all()] == ["create", "activate", "terminate"]


def test_future_subscription_is_pending_until_its_start(account, plan, clerk):
    sub = services.subscribe(clerk, account, plan, start_date=date(2027, 1, 1), activate=False)
    assert sub.status == "pending"
    sub = services.transition(clerk, sub, "activate", date(2027, 1, 15))
    assert services.state_at(sub, date(2027, 1, 14)).status == "pending"
    assert services.state_at(sub, date(2027, 1, 15)).status == "active"


def test_changes_cannot_be_dated_before_the_last_change(account, plan, clerk):
    sub = services.subscribe(clerk, account, plan, start_date=date(2026, 3, 1))
    services.transition(clerk, sub, "suspend", date(2026, 5, 1))
    with pytest.raises(IllegalTransition, match="before the last change"):
        services.transition(clerk, sub, "terminate", date(2026, 4, 1))


def test_plan_and_quantity_change_at_a_date(account, plan, clerk, in_tenant):
    bigger = make_plan("mobile-m", price="19.99")
    sub = services.subscribe(clerk, account, plan, start_date=date(2026, 3, 1), quantity=1)
    services.change_plan(clerk, sub, bigger, date(2026, 3, 16), "upgrade")
    services.change_quantity(clerk, sub, 3, date(2026, 4, 1))
    sub.refresh_from_db()
    assert sub.plan == bigger and sub.quantity == Decimal(3)
    march_10 = services.state_at(sub, date(2026, 3, 10))
    march_20 = services.state_at(sub, date(2026, 3, 20))
    assert (march_10.plan_id, march_10.quantity) == (plan.pk, 1)
    assert (march_20.plan_id, march_20.quantity) == (bigger.pk, 1)
    assert services.state_at(sub, date(2026, 4, 1)).quantity == 3
    assert history(sub).get(action="subscription.change_plan").changes["plan"] == ["mobile-s", "mobile-m"]


def test_plan_in_another_currency_is_refused(account, clerk, in_tenant):
    usd = make_plan("us-plan", currency="USD")
    with pytest.raises(ValidationFailed, match="priced in USD") as err:
        services.subscribe(clerk, account, usd, start_date=date(2026, 3, 1))
    assert err.value.field == "plan"


def test_plan_without_a_version_on_the_start_date_is_refused(account, clerk, in_tenant):
    later = make_plan("later", effective_from=date(2026, 6, 1))
    with pytest.raises(ValidationFailed, match="no version in force on 2026-05-01"):
        services.subscribe(clerk, account, later, start_date=date(2026, 5, 1))


def test_zero_quantity_is_refused(account, plan, clerk):
    with pytest.raises(ValidationFailed, match="greater than zero"):
        services.subscribe(clerk, account, plan, start_date=date(2026, 3, 1), quantity=0)


def test_read_only_staff_cannot_subscribe(account, plan, reader):
    with pytest.raises(Forbidden):
        services.subscribe(reader, account, plan, start_date=date(2026, 3, 1))
