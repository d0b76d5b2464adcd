"""Pockets over the API: top up, look at balances and the ledger, adjust, ask whether a spend fits."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def account_id(api):
    customer = api.post("/customers", {"name": "Ada"}).json()
    return api.post("/accounts", {"customer_id": customer["id"], "mode": "prepaid", "credit_limit": "0"}).json()["id"]


def test_top_up_then_balances_ledger_and_an_authorization(api, account_id):
    first = api.post(f"/accounts/{account_id}/top-ups", {"amount": "10.00", "reference": "PAY-1"})
    again = api.post(f"/accounts/{account_id}/top-ups", {"amount": "10.00", "reference": "PAY-1"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    pockets = api.get(f"/accounts/{account_id}/pockets").json()
    assert [(p["label"], p["balance"], p["unit"]) for p in pockets] == [("Main balance", "10", "EUR")]

    fits = api.post(f"/accounts/{account_id}/authorize", {"quantity": "9.99", "unit": "EUR"}).json()
    assert fits["allowed"] and fits["charged"] == "9.99"
    too_much = api.post(f"/accounts/{account_id}/authorize", {"quantity": "10.01", "unit": "EUR"}).json()
    assert not too_much["allowed"] and too_much["code"] == "insufficient_credit"
    call = api.post(f"/accounts/{account_id}/authorize",
                    {"quantity": "300", "unit": "second", "price": "0.10", "price_unit": "minute"})
    assert call.json()["charged"] == "0.5"  # 5 minutes at 0.10 a minute

    adjusted = api.post(f"/accounts/{account_id}/pockets/{pockets[0]['id']}/adjustments",
                        {"amount": "-2.50", "reason": "refund of a duplicate top-up"})
    assert adjusted.status_code == 201 and adjusted.json()["balance_after"] == "7.5"
    ledger = api.get(f"/accounts/{account_id}/pockets/{pockets[0]['id']}/entries").json()["items"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger] == [
        ("topup", "10", "10"), ("adjustment", "-2.5", "7.5")]


def test_a_minutes_pocket_is_shown_in_minutes(api, account_id, tenant):
    from obol.balances import services
    from obol.balances.models import Source
    from obol.core.actors import Actor
    from obol.core.money import Amount
    from obol.core.tenancy import tenant_context
    from obol.customers.models import BillingAccount

    with tenant_context(tenant):
        account = BillingAccount.objects.get(pk=account_id)
        services.open_pocket(Actor.process("t"), account, Amount(100, "minute"), source=Source.PROMOTION)
        services.spend(Actor.process("t"), account, Amount(59, "second"), reference="cdr-1")
    pocket = api.get(f"/accounts/{account_id}/pockets").json()[0]
    assert (pocket["balance"], pocket["unit"]) == ("5941", "second")
    assert (pocket["display_balance"], pocket["display_unit"]) == ("99.016667", "minute")


def test_another_tenants_account_is_not_found(api, other_api, account_id):
    assert other_api.get(f"/accounts/{account_id}/pockets").status_code == 404
    assert other_api.post(f"/accounts/{account_id}/top-ups", {"amount": "5", "reference": "X"}).status_code == 404
