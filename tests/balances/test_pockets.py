"""Pockets booked through the services: the issue's worked examples, modes, top-ups, adjustments,
expiry, idempotent spends, and `obol balances verify`."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from obol.balances import services
from obol.balances.models import LedgerEntry, Pocket, Source
from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.errors import ValidationFailed
from obol.core.money import Amount
from tests.factories import make_account

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def clock():
    with frozen(NOW):
        yield


def minutes_left(pocket):
    pocket.refresh_from_db()
    return Amount(pocket.balance, pocket.unit).convert("minute").value


def test_120_minutes_from_pockets_of_50_and_100_leaves_0_and_30(in_tenant, system):
    account = make_account(mode="prepaid")
    soon, _ = services.open_pocket(system, account, Amount(50, "minute"), source=Source.PROMOTION, priority=1,
                                   valid_until=NOW + timedelta(days=2))
    later, _ = services.open_pocket(system, account, Amount(100, "minute"), source=Source.ALLOWANCE, priority=2)
    expired, _ = services.open_pocket(system, account, Amount(500, "minute"), source=Source.VOUCHER, priority=0,
                                      valid_from=NOW - timedelta(days=30), valid_until=NOW - timedelta(seconds=1))
    spent = services.spend(system, account, Amount(120, "minute"), reference="cdr-1", service="voice")
    assert (minutes_left(soon), minutes_left(later), minutes_left(expired)) == (0, 30, 500)
    assert [(e.pocket_id, e.amount) for e in spent.entries] == [(soon.pk, -3000), (later.pk, -4200)]
    assert soon.display_unit == "minute" and soon.unit == "second"


def test_prepaid_with_1_eur_and_credit_limit_0_cannot_spend_1_01(in_tenant, system):
    account = make_account(mode="prepaid", credit_limit=Decimal(0))
    services.top_up(system, account, Amount("1.00", "EUR"), reference="PAY-1")
    with pytest.raises(services.SpendRefused) as refused:
        services.spend(system, account, Amount("1.01", "EUR"), reference="sms-1")
    assert refused.value.code == "insufficient_credit"
    assert services.money_pocket(system, account).balance == Decimal("1.00")
    services.spend(system, account, Amount("1.00", "EUR"), reference="sms-2")
    assert services.money_pocket(system, account).balance == 0


def test_postpaid_at_its_credit_limit_is_refused_with_the_limit(in_tenant, system):
    account = make_account(mode="postpaid", credit_limit=Decimal("50.00"))
    services.spend(system, account, Amount("50.00", "EUR"), reference="usage-1")
    with pytest.raises(services.SpendRefused) as refused:
        services.spend(system, account, Amount("0.01", "EUR"), reference="usage-2")
    assert refused.value.code == "credit_limit_exceeded"
    assert "credit limit 50.00 EUR would be exceeded" in refused.value.message
    assert services.accrual_pocket(system, account).balance == Decimal("-50.00")


def test_priced_usage_uses_the_allowance_then_money(in_tenant, system):
    account = make_account(mode="prepaid")
    services.open_pocket(system, account, Amount(1, "minute"), source=Source.ALLOWANCE, services=["voice"])
    services.top_up(system, account, Amount("2.00", "EUR"), reference="PAY-1")
    spent = services.spend(system, account, Amount(150, "second"), reference="cdr-9", service="voice",
                           price=Amount("0.12", "EUR"), price_unit="minute")  # 90 s at 0.12/min: 0.18
    assert (spent.plan.covered, spent.plan.charged) == (Decimal(60), Decimal("0.18"))
    assert services.money_pocket(system, account).balance == Decimal("1.82")


def test_spending_the_same_reference_twice_books_once(in_tenant, system):
    account = make_account(mode="prepaid")
    services.top_up(system, account, Amount("5.00", "EUR"), reference="PAY-1")
    first = services.spend(system, account, Amount("1.50", "EUR"), reference="event-7")
    again = services.spend(system, account, Amount("1.50", "EUR"), reference="event-7")
    assert again.duplicate and [e.pk for e in again.entries] == [e.pk for e in first.entries]
    assert services.money_pocket(system, account).balance == Decimal("3.50")


def test_a_top_up_repays_a_prepaid_overdraft_first_and_counts_once(in_tenant, system):
    account = make_account(mode="prepaid", credit_limit=Decimal("10"))
    services.spend(system, account, Amount("4.00", "EUR"), reference="usage-1")
    assert services.accrual_pocket(system, account).balance == Decimal("-4.00")
    services.top_up(system, account, Amount("10.00", "EUR"), reference="PAY-9")
    services.top_up(system, account, Amount("10.00", "EUR"), reference="PAY-9")
    assert services.accrual_pocket(system, account).balance == 0
    assert services.money_pocket(system, account).balance == Decimal("6.00")
    assert history(account).get(action="account.top_up").changes["reference"] == "PAY-9"


def test_an_adjustment_needs_a_reason_cannot_go_below_zero_and_is_audited(in_tenant, system, clerk, reader):
    account = make_account(mode="prepaid")
    pocket, _ = services.open_pocket(system, account, Amount(10, "sms"), source=Source.VOUCHER)
    with pytest.raises(ValidationFailed, match="needs a reason"):
        services.adjust(clerk, pocket, Decimal(-1), reason=" ")
    with pytest.raises(ValidationFailed, match="below zero"), transaction.atomic():
        services.adjust(clerk, pocket, Decimal(-11), reason="typo")
    with pytest.raises(Exception, match="may not change"):
        services.adjust(reader, pocket, Decimal(1), reason="goodwill")
    services.adjust(clerk, pocket, Decimal(-4), reason="sent twice by mistake")
    pocket.refresh_from_db()
    assert pocket.balance == 6
    event = history(account).get(action="pocket.adjust")
    assert (event.actor_label, event.reason, event.changes["balance"]) == ("clerk@acme", "sent twice by mistake",
                                                                          ["10", "6"])


def test_expiry_zeroes_what_is_left_with_a_ledger_entry(in_tenant, system):
    account = make_account(mode="prepaid")
    pocket, _ = services.open_pocket(system, account, Amount(100, "megabyte"), source=Source.PROMOTION,
                                     valid_until=NOW + timedelta(days=1))
    services.spend(system, account, Amount(40, "megabyte"), reference="data-1", service="data")
    assert services.expire_pockets(system, at=NOW) == 0
    assert services.expire_pockets(system, at=NOW + timedelta(days=1)) == 1
    assert services.expire_pockets(system, at=NOW + timedelta(days=2)) == 0
    pocket.refresh_from_db()
    expiry = pocket.entries.get(kind=LedgerEntry.Kind.EXPIRY)
    assert pocket.balance == 0 and expiry.amount == -60 * 1024 * 1024


def test_money_pockets_only_in_the_accounts_currency(in_tenant, system):
    account = make_account(mode="prepaid")
    with pytest.raises(ValidationFailed, match="holds EUR, not USD"):
        services.open_pocket(system, account, Amount(5, "USD"), source=Source.TOPUP)
    crypto, _ = services.open_pocket(system, account, Amount("0.5", "BTC"), source=Source.TOPUP)
    assert crypto.balance == Decimal("0.5")


def test_granting_with_the_same_key_twice_grants_once(in_tenant, system):
    account = make_account(mode="prepaid")
    first, created = services.open_pocket(system, account, Amount(5, "play"), source=Source.PROMOTION,
                                          grant_key="promo:1")
    again, created_again = services.open_pocket(system, account, Amount(5, "play"), source=Source.PROMOTION,
                                                grant_key="promo:1")
    assert (created, created_again, first.pk) == (True, False, again.pk)
    assert Pocket.objects.count() == 1 and LedgerEntry.objects.count() == 1


def test_verify_finds_a_pocket_whose_balance_drifted(in_tenant, system):
    account = make_account(mode="prepaid")
    pocket, _ = services.open_pocket(system, account, Amount(10, "sms"), source=Source.VOUCHER)
    services.spend(system, account, Amount(3, "sms"), reference="sms-1")
    call_command("balances", "verify")
    Pocket.objects.filter(pk=pocket.pk).update(balance=Decimal(8))  # a bug or a hand edit
    with pytest.raises(CommandError, match="1 pocket"):
        call_command("balances", "verify")
    assert [str(m) for m in services.verify()] == [
        f"pocket {pocket.pk} of account A-1: balance 8 but its ledger entries sum to 7"]


def test_the_daily_commands_run_on_an_empty_tenant(tenant, capsys):
    call_command("balances", "expire")
    call_command("balances", "grant-promotions")
    call_command("allowances", "grant", "--date", "2026-03-10")
    out = capsys.readouterr().out
    assert "0 pocket(s) expired" in out and "acme: 0 pocket(s) granted, 0 application(s) ended" in out


def test_the_unbilled_usage_pocket_obeys_the_mode_when_adjusted(in_tenant, system, clerk):
    account = make_account(mode="prepaid", credit_limit=Decimal("10"))
    services.spend(system, account, Amount("4", "EUR"), reference="usage-1")  # overdraft: owes 4
    accrual = services.accrual_pocket(system, account)
    with pytest.raises(ValidationFailed, match="not enough credit") as beyond, transaction.atomic():
        services.adjust(clerk, accrual, Decimal("-6.01"), reason="late fee")
    assert beyond.value.code == "insufficient_credit"
    with pytest.raises(ValidationFailed, match="would turn it into credit"), transaction.atomic():
        services.adjust(clerk, accrual, Decimal("50"), reason="goodwill")
    services.adjust(clerk, accrual, Decimal("4"), reason="waive the overdraft")
    accrual.refresh_from_db()
    assert accrual.balance == 0
    with pytest.raises(services.SpendRefused):  # the waiver gave no credit beyond the limit
        services.spend(system, account, Amount("10.01", "EUR"), reference="usage-2")


def test_a_price_in_another_currency_is_refused(in_tenant, system):
    account = make_account(mode="postpaid")
    with pytest.raises(ValidationFailed, match="pays in EUR, not USD"):
        services.spend(system, account, Amount(60, "second"), reference="cdr-1", price=Amount("1", "USD"),
                       price_unit="minute")


def test_a_tiny_price_is_rounded_once_at_the_rating_place(in_tenant, system):
    account = make_account(mode="postpaid")
    spent = services.spend(system, account, Amount(15, "second"), reference="cdr-1",
                           price=Amount("0.000002", "EUR"), price_unit="minute")
    assert spent.plan.accrued == Decimal("0.000001")  # exactly 0.0000005, half up


def test_a_time_without_zone_is_the_tenants_local_time(in_tenant, system):
    in_tenant.timezone = "Europe/Berlin"
    in_tenant.save()
    account = make_account(mode="prepaid")
    services.open_pocket(system, account, Amount(5, "sms"), source=Source.PROMOTION,
                         valid_from=datetime(2026, 3, 1, tzinfo=timezone.utc),
                         valid_until=datetime(2026, 3, 10, 11, tzinfo=timezone.utc))  # 12:00 in Berlin
    assert services.authorize(account, Amount(1, "sms"), at=datetime(2026, 3, 10, 11, 59)).allowed
    assert not services.authorize(account, Amount(1, "sms"), at=datetime(2026, 3, 10, 12, 0)).allowed


def test_pockets_hold_whole_seconds_and_bytes(in_tenant, system):
    account = make_account(mode="prepaid")
    with pytest.raises(ValidationFailed, match="not a whole number of bytes"):
        services.open_pocket(system, account, Amount("0.1", "megabyte"), source=Source.VOUCHER)
    with pytest.raises(ValidationFailed, match="not a whole number of seconds"):
        services.open_pocket(system, account, Amount("0.001", "minute"), source=Source.LOYALTY)


def test_ledger_entries_cannot_be_changed_in_bulk(in_tenant, system):
    account = make_account(mode="prepaid")
    services.top_up(system, account, Amount("5", "EUR"), reference="PAY-1")
    with pytest.raises(RuntimeError, match="immutable"):
        LedgerEntry.objects.filter(reference="PAY-1").update(amount=Decimal(500))
    with pytest.raises(RuntimeError, match="immutable"):
        LedgerEntry.objects.filter(reference="PAY-1").delete()


def test_a_payment_reference_reused_with_another_amount_is_refused(in_tenant, system):
    account = make_account(mode="prepaid")
    services.top_up(system, account, Amount("5", "EUR"), reference="PAY-1")
    with pytest.raises(Exception, match="already credited with a different amount"):
        services.top_up(system, account, Amount("500", "EUR"), reference="PAY-1")
    assert services.money_pocket(system, account).balance == 5
