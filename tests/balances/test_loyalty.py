"""Loyalty points: earned per amount paid (rounded down), idempotent per payment, redeemed for money
credit or units; the API's rewards, redeem and summary."""
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection, connections

from obol.balances import loyalty
from obol.balances.models import LedgerEntry, LoyaltyReward, LoyaltyRule, Pocket, Source
from obol.balances.services import SpendRefused, authorize, spend, verify
from obol.core import clock
from obol.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from obol.core.models import AuditEvent
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from obol.core.validation import full_clean
from tests.factories import make_account

D = Decimal
NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)


def rule(points="1", per_amount="1.00", currency="EUR", **fields):
    return LoyaltyRule.objects.create(points=D(points), per_amount=D(per_amount), currency=currency, **fields)


def reward(code="credit-1", cost="10", value="1.00", unit="EUR", **fields):
    return LoyaltyReward.objects.create(code=code, name=code.replace("-", " ").title(), cost=D(cost),
                                        grant_value=D(value), grant_unit=unit, **fields)


def points(account):
    return loyalty.points_balance(account)


@pytest.fixture
def frozen_now():
    with clock.frozen(NOW) as now:
        yield now


# --- the rule, pure ----------------------------------------------------------------------------

@pytest.mark.parametrize(("paid", "points_", "per_amount", "expected"), [
    (Amount("12.99", "EUR"), "1", "1.00", "12"),   # 12.99 → 12, rounded down
    (Amount("0.99", "EUR"), "1", "1.00", "0"),     # less than a point earns nothing
    (Amount("3.00", "EUR"), "3", "2.00", "4"),     # 3.00 × 3 ÷ 2.00 = 4.5 → 4
    (Amount("100", "EUR"), "1", "3.00", "33"),     # 33.33... → 33, no inexact division
    (Amount("12.99", "USD"), "1", "1.00", "0"),    # another currency earns nothing
])
def test_points_for_a_payment(paid, points_, per_amount, expected):
    rule_ = LoyaltyRule(points=D(points_), per_amount=D(per_amount), currency="EUR")
    assert loyalty.points_for(paid, rule_) == Amount(expected, "point")


# --- earning -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_paid_12_99_earns_12_points_once_per_payment(in_tenant, clerk, frozen_now):
    rule()
    account = make_account()
    earned = loyalty.earn_for_payment(clerk, account, Amount("12.99", "EUR"), reference="payment:P-1")
    assert earned.points == Amount(12, "point") and not earned.duplicate
    pocket = earned.pocket
    assert (pocket.unit, pocket.source, pocket.balance) == ("point", Source.LOYALTY, D(12))

    again = loyalty.earn_for_payment(clerk, account, Amount("12.99", "EUR"), reference="payment:P-1")
    assert again.duplicate and again.pocket.pk == earned.pocket.pk
    assert points(account) == D(12)
    assert Pocket.objects.filter(account=account, unit="point").count() == 1
    assert list(LedgerEntry.objects.filter(pocket__account=account).values_list("kind", "amount")) == [
        ("grant", D(12))]

    loyalty.earn_for_payment(clerk, account, Amount("5.00", "EUR"), reference="payment:P-2")
    assert points(account) == D(17)
    assert AuditEvent.objects.filter(action="loyalty.earn", object_id=str(account.pk)).count() == 2
    assert verify() == []


@pytest.mark.django_db
def test_no_points_without_an_active_rule_for_the_currency(in_tenant, clerk):
    account = make_account()
    rule(active=False)
    nothing = loyalty.earn_for_payment(clerk, account, Amount("50.00", "EUR"), reference="payment:P-1")
    assert nothing.pocket is None and nothing.points == Amount(0, "point")
    rule(currency="EUR")
    assert loyalty.earn_for_payment(clerk, account, Amount("50.00", "USD"), reference="P-2").pocket is None
    assert loyalty.earn_for_payment(clerk, account, Amount("0.99", "EUR"), reference="P-3").pocket is None
    assert not Pocket.objects.filter(account=account).exists()
    assert loyalty.earn_for_payment(clerk, account, Amount("50.00", "EUR"), reference="payment:P-4").pocket
    assert points(account) == D(50)


@pytest.mark.django_db
def test_earning_is_refused_to_a_reader_and_without_a_reference(in_tenant, clerk, reader):
    rule()
    account = make_account()
    with pytest.raises(Forbidden):
        loyalty.earn_for_payment(reader, account, Amount("10", "EUR"), reference="payment:P-1")
    with pytest.raises(ValidationFailed) as refused:
        loyalty.earn_for_payment(clerk, account, Amount("10", "EUR"), reference=" ")
    assert refused.value.field == "reference"
    assert points(account) == 0


@pytest.mark.django_db
def test_one_active_rule_per_currency(in_tenant):
    rule()
    with pytest.raises(ValidationFailed) as refused:
        full_clean(LoyaltyRule(points=D(2), per_amount=D(1), currency="EUR"))
    assert (refused.value.code, refused.value.field) == ("invalid_duplicate", "currency")
    assert refused.value.message == ("currency: There is already an active loyalty rule for this currency; "
                                     "deactivate it first.")
    full_clean(LoyaltyRule(points=D(2), per_amount=D(1), currency="EUR", active=False))  # inactive: fine


# --- redeeming ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_redeem_10_of_12_points_for_1_eur_credit(in_tenant, clerk, frozen_now):
    rule()
    reward("credit-1", cost="10", value="1.00", unit="EUR")
    account = make_account(mode="prepaid")
    loyalty.earn_for_payment(clerk, account, Amount("12.99", "EUR"), reference="payment:P-1")

    redeemed = loyalty.redeem_reward(clerk, account, "credit-1", reference="R-1")
    assert (redeemed.points_spent, redeemed.points_left) == (D(10), D(2))
    assert points(account) == D(2)
    money = redeemed.pocket
    assert (money.unit, money.balance, money.source) == ("EUR", D("1.00"), Source.LOYALTY)
    assert money.label == "Credit 1"

    repeat = loyalty.redeem_reward(clerk, account, "credit-1", reference="R-1")
    assert repeat.duplicate and repeat.pocket.pk == money.pk and repeat.points_spent == D(10)
    assert points(account) == D(2)
    assert Pocket.objects.filter(account=account, unit="EUR").count() == 1
    assert AuditEvent.objects.filter(action="loyalty.redeem").count() == 1

    # the credit pays for usage like any money
    spent = spend(clerk, account, Amount("0.40", "EUR"), reference="usage:1")
    assert spent.plan.charged == D("0.40")
    money.refresh_from_db()
    assert money.balance == D("0.60")
    assert verify() == []


@pytest.mark.django_db
def test_not_enough_points_is_refused_and_changes_nothing(in_tenant, clerk):
    rule()
    reward("credit-1", cost="10")
    account = make_account()
    loyalty.earn_for_payment(clerk, account, Amount("9.99", "EUR"), reference="payment:P-1")  # 9 points
    with pytest.raises(SpendRefused) as refused:
        loyalty.redeem_reward(clerk, account, "credit-1", reference="R-1")
    assert refused.value.code == "insufficient_units" and refused.value.status == 409
    assert points(account) == D(9)
    assert not Pocket.objects.filter(account=account, unit="EUR").exists()
    assert not LedgerEntry.objects.filter(kind="debit").exists()


@pytest.mark.django_db
def test_redeem_500_mb_for_data_only_valid_30_days(in_tenant, clerk, frozen_now):
    rule()
    reward("data-500", cost="25", value="500", unit="megabyte", validity_days=30, services=["data"])
    account = make_account()
    loyalty.earn_for_payment(clerk, account, Amount("30.00", "EUR"), reference="payment:P-1")
    pocket = loyalty.redeem_reward(clerk, account, "data-500", reference="R-1").pocket
    assert (pocket.unit, pocket.display_unit, pocket.balance) == ("byte", "megabyte", D(500 * 1024 * 1024))
    assert pocket.valid_until == NOW + timedelta(days=30) and pocket.services == ["data"]
    assert points(account) == D(5)
    assert authorize(account, Amount(100, "megabyte"), service="data").covered == D(100 * 1024 * 1024)
    assert not authorize(account, Amount(100, "megabyte"), service="video").allowed


@pytest.mark.django_db
def test_reward_refusals(in_tenant, clerk):
    rule()
    reward("usd-credit", cost="1", value="1.00", unit="USD")
    reward("retired", cost="1", value="1", unit="package", active=False)
    reward("credit-1", cost="1", value="1.00", unit="EUR")
    account = make_account()
    loyalty.earn_for_payment(clerk, account, Amount("5", "EUR"), reference="payment:P-1")
    with pytest.raises(ValidationFailed) as wrong_currency:
        loyalty.redeem_reward(clerk, account, "usd-credit", reference="R-1")
    assert (wrong_currency.value.code, wrong_currency.value.field) == ("unit_mismatch", "reward")
    with pytest.raises(ValidationFailed) as retired:
        loyalty.redeem_reward(clerk, account, "retired", reference="R-2")
    assert retired.value.code == "reward_inactive"
    with pytest.raises(NotFound):
        loyalty.redeem_reward(clerk, account, "no-such-reward", reference="R-3")
    loyalty.redeem_reward(clerk, account, "credit-1", reference="R-4")
    with pytest.raises(Conflict) as reused:
        loyalty.redeem_reward(clerk, account, "usd-credit", reference="R-4")
    assert (reused.value.code, reused.value.field) == ("reference_reused", "reference")
    assert points(account) == D(4)


@pytest.mark.django_db
def test_reward_rules_for_the_admin(in_tenant):
    with pytest.raises(ValidationFailed) as fraction:
        full_clean(LoyaltyReward(code="x", name="X", cost=D("2.5"), grant_value=D(1), grant_unit="EUR"))
    assert fraction.value.field == "cost"
    with pytest.raises(ValidationFailed) as points_for_points:
        full_clean(LoyaltyReward(code="x", name="X", cost=D(5), grant_value=D(1), grant_unit="point"))
    assert points_for_points.value.field == "grant_unit"
    with pytest.raises(ValidationFailed) as services:
        full_clean(LoyaltyReward(code="x", name="X", cost=D(5), grant_value=D(1), grant_unit="sms",
                                 services="data"))
    assert services.value.field == "services"


@pytest.mark.django_db
def test_summary_after_earning_and_redeeming(in_tenant, clerk):
    rule()
    reward("credit-1", cost="10")
    account = make_account()
    loyalty.earn_for_payment(clerk, account, Amount("12.99", "EUR"), reference="payment:P-1")
    loyalty.earn_for_payment(clerk, account, Amount("8.50", "EUR"), reference="payment:P-2")
    loyalty.redeem_reward(clerk, account, "credit-1", reference="R-1")
    summary = loyalty.summary(account)
    assert (summary.points, summary.earned, summary.redeemed) == (D(10), D(20), D(10))


# --- API ---------------------------------------------------------------------------------------

@pytest.fixture
def shop(tenant, system):
    with tenant_context(tenant):
        rule()
        reward("credit-1", cost="10", value="1.00")
        reward("data-500", cost="25", value="500", unit="megabyte", validity_days=30, services=["data"])
        reward("retired", cost="1", value="1", unit="package", active=False)
        account = make_account()
        loyalty.earn_for_payment(system, account, Amount("12.99", "EUR"), reference="payment:P-1")
    return account


@pytest.mark.django_db
def test_api_lists_the_rewards_on_offer(api, shop):
    rewards = api.get("/loyalty/rewards").json()
    assert [r["code"] for r in rewards] == ["credit-1", "data-500"]
    assert rewards[1] == {"code": "data-500", "name": "Data 500", "cost": "25", "grant_value": "500",
                          "grant_unit": "megabyte", "validity_days": 30, "services": ["data"]}


@pytest.mark.django_db
def test_api_redeem_and_summary(api, shop):
    assert api.get(f"/accounts/{shop.pk}/loyalty").json() == {
        "account_id": shop.pk, "points": "12", "earned": "12", "redeemed": "0"}
    first = api.post(f"/accounts/{shop.pk}/loyalty/redeem", {"reward": "credit-1", "reference": "R-1"},
                     **{"Idempotency-Key": "k1"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["points_spent"], body["points_left"], body["duplicate"]) == ("10", "2", False)
    assert (body["pocket"]["unit"], body["pocket"]["granted"]) == ("EUR", "1")
    replay = api.post(f"/accounts/{shop.pk}/loyalty/redeem", {"reward": "credit-1", "reference": "R-1"},
                      **{"Idempotency-Key": "k1"})
    assert replay.json() == body
    assert api.get(f"/accounts/{shop.pk}/loyalty").json() == {
        "account_id": shop.pk, "points": "2", "earned": "12", "redeemed": "10"}

    refused = api.post(f"/accounts/{shop.pk}/loyalty/redeem", {"reward": "credit-1", "reference": "R-2"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_units"
    unknown = api.post(f"/accounts/{shop.pk}/loyalty/redeem", {"reward": "nope", "reference": "R-3"})
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "reward"
    assert api.get(f"/accounts/{shop.pk}/loyalty").json()["points"] == "2"


@pytest.mark.django_db
def test_api_roles_and_tenants(readonly_api, other_api, shop):
    assert readonly_api.get(f"/accounts/{shop.pk}/loyalty").status_code == 200
    body = {"reward": "credit-1", "reference": "R"}
    forbidden = readonly_api.post(f"/accounts/{shop.pk}/loyalty/redeem", body)
    assert forbidden.status_code == 403
    assert other_api.get(f"/accounts/{shop.pk}/loyalty").status_code == 404
    assert other_api.post(f"/accounts/{shop.pk}/loyalty/redeem",
                          {"reward": "credit-1", "reference": "R"}).status_code == 404
    assert other_api.get("/loyalty/rewards").json() == []


# --- concurrency (PostgreSQL) -------------------------------------------------------------------

@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_redemptions_with_one_reference_spend_once(tenant, system):
    with tenant_context(tenant):
        rule()
        reward("credit-1", cost="10")
        account = make_account()
        loyalty.earn_for_payment(system, account, Amount("25", "EUR"), reference="payment:P-1")
    barrier = threading.Barrier(4)
    results = []

    def redeem():
        try:
            with tenant_context(tenant):
                barrier.wait()
                results.append(loyalty.redeem_reward(system, account, "credit-1", reference="R-1").duplicate)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True, True, True]
    with tenant_context(tenant):
        assert points(account) == D(15)
        assert Pocket.objects.filter(account=account, unit="EUR").count() == 1
        assert verify() == []


# --- back office -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_back_office_edits_the_rewards(tenant, admin_in_tenant):
    with tenant_context(tenant):
        rule_ = rule()
        existing = reward("credit-1")
    for url in ("/admin/balances/loyaltyrule/", "/admin/balances/loyaltyrule/add/",
                f"/admin/balances/loyaltyrule/{rule_.pk}/change/", "/admin/balances/loyaltyreward/",
                "/admin/balances/loyaltyreward/add/", f"/admin/balances/loyaltyreward/{existing.pk}/change/"):
        assert admin_in_tenant.get(url).status_code == 200, url
    form = {"code": "sms-100", "name": "100 SMS", "cost": "50", "grant_value": "100", "grant_unit": "sms",
            "validity_days": "30", "services": '["sms"]', "active": "on"}
    refused = admin_in_tenant.post("/admin/balances/loyaltyreward/add/", {**form, "cost": "2.5"})
    assert refused.status_code == 200 and "a whole number of points" in refused.content.decode()
    taken = admin_in_tenant.post("/admin/balances/loyaltyreward/add/", {**form, "code": "credit-1"})
    assert taken.status_code == 200 and "A reward with this code already exists." in taken.content.decode()
    second_rule = admin_in_tenant.post("/admin/balances/loyaltyrule/add/", {
        "currency": "EUR", "points": "2", "per_amount": "1", "active": "on"})
    assert second_rule.status_code == 200 and "already an active loyalty rule" in second_rule.content.decode()
    saved = admin_in_tenant.post("/admin/balances/loyaltyreward/add/", form)
    assert saved.status_code == 302
    with tenant_context(tenant):
        sms = LoyaltyReward.objects.get(code="sms-100")
        assert (sms.cost, sms.grant, sms.services) == (D(50), Amount(100, "sms"), ["sms"])
        assert sms.tenant_id == tenant.pk
        assert AuditEvent.objects.filter(action="loyaltyreward.create", object_id=str(sms.pk)).count() == 1


@pytest.fixture
def admin_in_tenant(tenant):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from obol.core.models import StaffProfile

    user = get_user_model().objects.create_superuser("boss", password="pw-123456")
    StaffProfile.objects.create(user=user, tenant=tenant, role="admin")
    client = Client()
    client.force_login(user)
    return client
