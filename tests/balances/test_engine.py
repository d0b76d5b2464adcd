"""The pure spend engine: which pockets pay, in which order, and when an account is refused."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from obol.balances.engine import AccountState, PocketState, SpendRequest, Take, plan_spend

NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
D = Decimal


def minutes(n):
    return D(n) * 60


def request(quantity, unit="second", **kw):
    return SpendRequest(quantity=D(quantity), unit=unit, at=NOW, **kw)


PREPAID = AccountState("prepaid", "EUR")
POSTPAID = AccountState("postpaid", "EUR", credit_limit=D("100"))


def test_120_minutes_split_over_two_pockets_by_priority():
    soon = PocketState(1, "second", minutes(50), priority=1, valid_until=NOW + timedelta(days=2))
    later = PocketState(2, "second", minutes(100), priority=2)
    plan = plan_spend([later, soon], PREPAID, request(minutes(120)))
    assert plan.allowed
    assert plan.takes == (Take(1, minutes(50)), Take(2, minutes(70)))  # leaves 0 and 30 minutes


def test_an_expired_pocket_is_skipped():
    expired = PocketState(1, "second", minutes(500), priority=1, valid_until=NOW)
    not_yet = PocketState(3, "second", minutes(500), priority=1, valid_from=NOW + timedelta(seconds=1))
    current = PocketState(2, "second", minutes(100), priority=2)
    plan = plan_spend([expired, not_yet, current], PREPAID, request(minutes(60)))
    assert plan.takes == (Take(2, minutes(60)),)


def test_restricted_pockets_come_first_and_only_for_their_service():
    any_service = PocketState(1, "sms", D(100), priority=1)
    promo_only = PocketState(2, "sms", D(10), priority=50, services=("sms",))
    roaming = PocketState(3, "sms", D(10), priority=1, destination_groups=("EU",))
    national = plan_spend([any_service, promo_only, roaming], PREPAID,
                          request(15, "sms", service="sms", destination_group="national"))
    assert national.takes == (Take(2, D(10)), Take(1, D(5)))
    eu = plan_spend([any_service, promo_only, roaming], PREPAID, request(15, "sms", service="sms",
                                                                           destination_group="EU"))
    assert eu.takes == (Take(3, D(10)), Take(2, D(5)))


def test_equal_priority_uses_the_earliest_expiry_first():
    late = PocketState(1, "sms", D(5), valid_until=NOW + timedelta(days=30))
    early = PocketState(2, "sms", D(5), valid_until=NOW + timedelta(days=3))
    never = PocketState(3, "sms", D(5))
    assert plan_spend([never, late, early], PREPAID, request(12, "sms")).takes == (
        Take(2, D(5)), Take(1, D(5)), Take(3, D(2)))


def test_prepaid_cannot_go_below_zero_without_a_credit_limit():
    wallet = PocketState(1, "EUR", D("1.00"))
    assert plan_spend([wallet], PREPAID, request("1.00", "EUR")).takes == (Take(1, D("1.00")),)
    refused = plan_spend([wallet], AccountState("prepaid", "EUR", credit_limit=D(0)), request("1.01", "EUR"))
    assert not refused.allowed and refused.code == "insufficient_credit"
    assert "0.01 EUR more is needed" in refused.message


def test_prepaid_with_a_credit_limit_may_overdraw_down_to_it():
    wallet = PocketState(1, "EUR", D("1.00"))
    owed = PocketState(9, "EUR", D("-3.00"), is_accrual=True)
    account = AccountState("prepaid", "EUR", credit_limit=D("5.00"))
    plan = plan_spend([wallet, owed], account, request("3.00", "EUR"))
    assert plan.allowed and plan.takes == (Take(1, D("1.00")), Take(9, D("2.00"))) and plan.accrued == D("2.00")
    assert not plan_spend([wallet, owed], account, request("3.01", "EUR")).allowed


def test_units_left_over_are_priced_and_paid_from_money():
    bundle = PocketState(1, "second", D(90))
    wallet = PocketState(2, "EUR", D("5.00"))
    plan = plan_spend([bundle, wallet], PREPAID, request(150, price=D("0.10") / 60))
    assert plan.takes == (Take(1, D(90)), Take(2, D("0.100000")))
    assert (plan.covered, plan.charged) == (D(90), D("0.100000"))


def test_without_a_price_only_unit_pockets_can_pay():
    plan = plan_spend([PocketState(1, "second", D(30)), PocketState(2, "EUR", D(50))], PREPAID, request(60))
    assert not plan.allowed and plan.code == "insufficient_units"


def test_postpaid_accrues_and_is_refused_at_its_credit_limit():
    owed = PocketState(9, "EUR", D("-99.50"), is_accrual=True)
    promo_money = PocketState(2, "EUR", D("20.00"))
    assert plan_spend([owed, promo_money], POSTPAID, request("0.50", "EUR")).takes == (Take(9, D("0.50")),)
    refused = plan_spend([owed], POSTPAID, request("0.51", "EUR"))
    assert not refused.allowed and refused.code == "credit_limit_exceeded"
    assert refused.message == ("credit limit 100.00 EUR would be exceeded: 99.50 EUR unbilled + 0.00 EUR unpaid "
                               "invoices + 0.51 EUR = 100.01 EUR")


def test_unpaid_invoices_count_against_the_credit_limit():
    account = AccountState("postpaid", "EUR", credit_limit=D("100"), unpaid_invoices=D("60"))
    owed = PocketState(9, "EUR", D("-30"), is_accrual=True)
    assert plan_spend([owed], account, request("10", "EUR")).allowed
    assert not plan_spend([owed], account, request("10.01", "EUR")).allowed


def test_hybrid_uses_units_then_money_then_accrual():
    account = AccountState("hybrid", "EUR", credit_limit=D("50"))
    bundle = PocketState(1, "second", D(60))
    wallet = PocketState(2, "EUR", D("0.05"))
    plan = plan_spend([bundle, wallet], account, request(180, price=D("0.05") / 60))
    assert plan.takes == (Take(1, D(60)), Take(2, D("0.05")), Take(0, D("0.050000")))
    assert (plan.covered, plan.charged, plan.accrued) == (D(60), D("0.05"), D("0.05"))


@pytest.mark.parametrize("quantity", ["0", "-1"])
def test_a_quantity_must_be_positive(quantity):
    assert plan_spend([], PREPAID, request(quantity)).code == "invalid_quantity"


def test_a_closed_account_spends_nothing():
    closed = AccountState("prepaid", "EUR", closed=True)
    plan = plan_spend([PocketState(1, "EUR", D(100))], closed, request("1", "EUR"))
    assert not plan.allowed and plan.code == "account_closed"
