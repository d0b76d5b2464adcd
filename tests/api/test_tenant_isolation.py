"""Tenant A's key never reaches tenant B's rows: every route with B's ids answers 404 and changes
nothing. The routes come from the OpenAPI document, so a new route is covered (or fails this test
until it says how to fill its parameters)."""
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from obol.api.api import api as ninja_api
from obol.billing import services as billing
from obol.billing.models import Invoice, TaxRate
from obol.charging.models import ChargingSession
from obol.core import clock
from obol.core.actors import Actor
from obol.core.models import AuditEvent
from obol.core.tenancy import all_tenants, tenant_context
from obol.balances import services as balances
from obol.core.money import Amount
from obol.customers import services as customers
from obol.subscriptions import services as subscriptions
from tests.factories import make_plan

pytestmark = pytest.mark.django_db

# A plausible body for each write route, so the answer is about tenancy, not validation.
BODIES = {
    ("post", "/customers"): None,  # no foreign id involved
    ("patch", "/customers/{customer_id}"): {"name": "Hacked"},
    ("post", "/customers/{customer_id}/contacts"): {"name": "Spy"},
    ("post", "/customers/{customer_id}/addresses"): {"line1": "x", "city": "y", "country": "FR"},
    ("post", "/accounts"): {"customer_id": "{customer_id}"},
    ("patch", "/accounts/{account_id}"): {"name": "Hacked"},
    ("post", "/subscriptions"): {"account_id": "{account_id}", "plan": "{plan_code}", "start_date": "2026-02-01"},
    ("patch", "/subscriptions/{subscription_id}"): {"quantity": "5", "effective_date": "2026-03-01"},
    ("post", "/subscriptions/{subscription_id}/identifiers"): {"kind": "msisdn", "value": "33612345678"},
    ("post", "/subscriptions/{subscription_id}/identifiers/{identifier_id}/end"): {"valid_to": "2026-09-01T00:00:00Z"},
    ("post", "/plans"): None,  # creates in the caller's own tenant: no foreign id involved
    ("put", "/plans/{plan_id}"): {"code": "{plan_code}", "name": "Hacked", "currency": "EUR", "charges": []},
    ("patch", "/plans/{plan_id}"): {"name": "Hacked"},
    ("post", "/accounts/{account_id}/top-ups"): {"amount": "1", "reference": "intruder"},
    ("post", "/accounts/{account_id}/pockets/{pocket_id}/adjustments"): {"amount": "-1", "reason": "theft"},
    ("post", "/accounts/{account_id}/authorize"): {"quantity": "1", "unit": "EUR"},
    ("post", "/accounts/{account_id}/vouchers/redeem"): {"code": "ABCD-EFGH-JKLM-NPQR"},
    ("post", "/voucher-batches"): None,  # creates in the caller's own tenant
    ("post", "/accounts/{account_id}/loyalty/redeem"): {"reward": "credit-1", "reference": "intruder"},
    ("post", "/subscriptions/{subscription_id}/promotions"): {"code": "WELCOME"},
    # charging answers in its own shape: another tenant's subscriber or session is unknown here
    ("post", "/charging/sessions"): {"request_id": "x-1", "subscriber": "33600000001", "service": "voice",
                                     "requested": 60},
    ("post", "/charging/sessions/{session_id}/update"): {"request_id": "x-2", "used": 60, "requested": 60},
    ("post", "/charging/sessions/{session_id}/terminate"): {"request_id": "x-3", "used": 60},
    ("post", "/charging/events"): {"request_id": "x-4", "subscriber": "33600000001", "service": "sms"},
    ("post", "/billing/accounts/{account_number}/one-off-invoices"): {"items": [{"name": "x", "amount": "1"}]},
    ("post", "/billing/accounts/{account_number}/invoices"): {"date": "2026-03-01"},
    ("post", "/billing/invoices/{invoice_id}/accept"): {},
    ("post", "/billing/invoices/{invoice_id}/cancel"): {},
    ("post", "/billing/invoices/{invoice_id}/issue"): {},
    ("post", "/billing/invoices/{invoice_id}/send"): {"to": "intruder@example.org"},
    ("post", "/billing/invoices/{invoice_id}/credit-notes"): {},
}
NOT_HERE = ("not_found", "unknown_subscriber", "unknown_session")
TRANSITION = {"effective_date": "2026-03-01", "reason": "intrusion"}


@pytest.fixture
def victim(other_tenant):
    """Tenant B's data: a customer with an account, a plan and a subscription with an MSISDN."""
    actor = Actor.process("setup")
    with tenant_context(other_tenant):
        customer = customers.create_customer(actor, name="Victim")
        account = customers.open_account(actor, customer)
        plan = make_plan("victim-plan")
        sub = subscriptions.subscribe(actor, account, plan, start_date=date(2026, 1, 1),
                                      identifiers_=[{"kind": "msisdn", "value": "33600000001"}])
        pocket = balances.money_pocket(actor, account)
        balances.top_up(actor, account, Amount("5", "EUR"), reference="victim-pay")
        session = ChargingSession.objects.create(
            tenant=other_tenant, account=account, subscription=sub, identifier="33600000001", service_kind="voice",
            service="voice", started_at=clock.now(), terms={}, granted=60, holds={str(pocket.pk): "0.10"},
            expires_at=clock.now() + timedelta(minutes=5))
        TaxRate.objects.create(country="FR", category="standard", rate=Decimal("20"), valid_from=date(2020, 1, 1))
        invoice = billing.one_off(actor, account, [("Visit", Decimal("10.00"), "standard")], date(2026, 1, 5))
        return {"invoice_id": invoice.pk, "account_number": account.number,
                "session_id": session.key, "pocket_id": pocket.pk, "customer_id": customer.pk, "account_id": account.pk, "subscription_id": sub.pk,
                "identifier_id": sub.identifiers.get().pk, "plan_id": plan.pk, "plan_code": plan.code}


def _fill(value, ids):
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _snapshot():
    from obol.balances.models import LedgerEntry, Pocket
    from obol.catalog.models import PricePlan
    from obol.customers.models import Address, BillingAccount, Contact, Customer
    from obol.subscriptions.models import Subscription, SubscriptionChange, UsageIdentifier

    with all_tenants():
        return {
            "customers": list(Customer.objects.order_by("pk").values()),
            "contacts": Contact.objects.count(),
            "addresses": Address.objects.count(),
            "accounts": list(BillingAccount.objects.order_by("pk").values()),
            "plans": list(PricePlan.objects.order_by("pk").values()),
            "subscriptions": list(Subscription.objects.order_by("pk").values()),
            "changes": SubscriptionChange.objects.count(),
            "identifiers": list(UsageIdentifier.objects.order_by("pk").values()),
            "audit": AuditEvent.objects.count(),
            "pockets": list(Pocket.objects.order_by("pk").values()),
            "ledger": LedgerEntry.objects.count(),
            "charging sessions": list(ChargingSession.objects.order_by("pk").values()),
            "invoices": list(Invoice.objects.order_by("pk").values()),
        }


def test_every_route_with_another_tenants_ids_answers_404(api, victim):
    document = ninja_api.get_openapi_schema()
    before = _snapshot()
    tried = 0
    for full_path, operations in document["paths"].items():
        path = full_path.removeprefix("/api/v1")
        for method in operations:
            if "{" not in path and method == "get":
                continue  # lists: checked below
            key = (method, path)
            if key not in BODIES and not path.endswith(("/activate", "/suspend", "/resume", "/terminate")) \
                    and method != "get":
                pytest.fail(f"add a body for {method.upper()} {path} to BODIES")
            body = BODIES.get(key, TRANSITION if method != "get" else None)
            if body is None and method != "get":
                continue
            url = _fill(path, victim)
            response = getattr(api, method)(url, _fill(body, victim)) if method != "get" else api.get(url)
            assert response.status_code == 404, f"{method.upper()} {path}: {response.status_code} {response.content}"
            answer = response.json()
            assert (answer["error"]["code"] if "error" in answer else answer["code"]) in NOT_HERE
            tried += 1
    assert tried >= 12
    assert _snapshot() == before


def test_lists_show_only_the_callers_rows(api, victim):
    api.post("/customers", {"name": "Mine"})
    assert [c["name"] for c in api.get("/customers").json()["items"]] == ["Mine"]
    assert api.get("/accounts").json()["count"] == 0
    assert api.get("/subscriptions").json()["count"] == 0
    assert api.get("/subscriptions", identifier="33600000001").json()["count"] == 0
    assert api.get("/plans").json()["count"] == 0
    assert api.get("/billing/invoices").json()["count"] == 0
