"""Customers and accounts over the API: create, read, update, list, errors, idempotency, roles."""
import pytest

from obol.core.models import AuditEvent
from obol.core.tenancy import tenant_context
from obol.customers.models import Customer

pytestmark = pytest.mark.django_db

COMPANY = {
    "kind": "company", "name": "Muster GmbH", "email": "billing@muster.de", "country": "DE",
    "tax_id": "DE 136,695,976",
    "contacts": [{"role": "billing", "name": "Erika Mustermann", "email": "erika@muster.de"}],
    "addresses": [{"line1": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin", "country": "DE"}],
}


def test_create_get_update_a_company_customer(api):
    created = api.post("/customers", COMPANY)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == "C-000001"
    assert body["tax_id"] == "DE136695976"  # validated and compacted by python-stdnum
    assert body["contacts"][0]["name"] == "Erika Mustermann"
    assert body["addresses"][0]["city"] == "Berlin"

    assert api.get(f"/customers/{body['id']}").json()["name"] == "Muster GmbH"
    patched = api.patch(f"/customers/{body['id']}", {"phone": "+49 30 1234"})
    assert patched.status_code == 200 and patched.json()["phone"] == "+49 30 1234"
    assert patched.json()["name"] == "Muster GmbH"

    contact = api.post(f"/customers/{body['id']}/contacts", {"role": "technical", "name": "Max Admin"})
    address = api.post(f"/customers/{body['id']}/addresses",
                       {"kind": "service", "line1": "Werk 2", "city": "Potsdam", "country": "de"})
    assert contact.status_code == 201 and address.status_code == 201
    assert address.json()["country"] == "DE"
    again = api.get(f"/customers/{body['id']}").json()
    assert [c["name"] for c in again["contacts"]] == ["Erika Mustermann", "Max Admin"]
    assert [a["city"] for a in again["addresses"]] == ["Berlin", "Potsdam"]


def test_invalid_vat_number_names_the_field(api):
    response = api.post("/customers", {**COMPANY, "tax_id": "DE136695977"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_tax_id"
    assert error["field"] == "tax_id"
    assert "DE136695977" in error["message"]


def test_body_validation_errors_are_json_with_the_field(api):
    response = api.post("/customers", {"kind": "robot", "name": "R2"})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_request", "field": "kind",
        "message": response.json()["error"]["message"],
    }
    assert response.json()["error"]["message"].startswith("kind: ")


def test_list_is_paginated_and_filterable(api):
    for i in range(7):
        api.post("/customers", {"name": f"Person {i}", "country": "FR" if i % 2 else "DE"})
    page = api.get("/customers", limit=3, offset=0).json()
    assert page["count"] == 7 and [c["name"] for c in page["items"]] == ["Person 0", "Person 1", "Person 2"]
    assert [c["name"] for c in api.get("/customers", limit=3, offset=6).json()["items"]] == ["Person 6"]
    french = api.get("/customers", country="FR").json()
    assert french["count"] == 3 and {c["country"] for c in french["items"]} == {"FR"}
    assert [c["name"] for c in api.get("/customers", q="son 4").json()["items"]] == ["Person 4"]


def test_accounts_with_parent_and_credit_limit(api):
    customer = api.post("/customers", COMPANY).json()
    parent = api.post("/accounts", {"customer_id": customer["id"], "name": "HQ", "mode": "postpaid",
                                    "credit_limit": "5000.00", "bill_cycle_day": 31}).json()
    child = api.post("/accounts", {"customer_id": customer["id"], "name": "Branch", "parent_id": parent["id"],
                                   "mode": "hybrid"})
    assert child.status_code == 201, child.content
    assert child.json()["parent_id"] == parent["id"] and child.json()["currency"] == "EUR"
    assert parent["credit_limit"] == "5000" and parent["bill_cycle_day"] == 31

    circle = api.patch(f"/accounts/{parent['id']}", {"parent_id": child.json()["id"]})
    assert circle.status_code == 422 and circle.json()["error"]["field"] == "parent"
    usd_child = api.post("/accounts", {"customer_id": customer["id"], "currency": "USD", "parent_id": parent["id"]})
    assert usd_child.status_code == 422 and "bills in EUR" in usd_child.json()["error"]["message"]
    bad_day = api.post("/accounts", {"customer_id": customer["id"], "bill_cycle_day": 32})
    assert bad_day.status_code == 422 and bad_day.json()["error"]["field"] == "bill_cycle_day"


def test_eth_credit_limit_keeps_all_18_decimals_over_the_api(api):
    customer = api.post("/customers", {"name": "Satoshi"}).json()
    account = api.post("/accounts", {"customer_id": customer["id"], "currency": "ETH", "mode": "prepaid",
                                     "credit_limit": "123456789.123456789012345678"})
    assert account.status_code == 201, account.content
    assert api.get(f"/accounts/{account.json()['id']}").json()["credit_limit"] == "123456789.123456789012345678"


def test_repeated_post_with_the_same_idempotency_key_creates_nothing_new(api, tenant):
    first = api.post("/customers", {"name": "Once Only"}, **{"Idempotency-Key": "k-1"})
    second = api.post("/customers", {"name": "Once Only"}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    with tenant_context(tenant):
        assert Customer.objects.filter(name="Once Only").count() == 1
        assert AuditEvent.objects.filter(action="customer.create").count() == 1
    other = api.post("/customers", {"name": "Something else"}, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert api.post("/customers", {"name": "Once Only"}).json()["id"] != first.json()["id"]


def test_the_same_idempotency_key_in_two_tenants_is_independent(api, other_api):
    a = api.post("/customers", {"name": "A"}, **{"Idempotency-Key": "shared"})
    b = other_api.post("/customers", {"name": "A"}, **{"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


def test_read_only_key_can_read_but_not_change(api, readonly_api, tenant):
    customer = api.post("/customers", {"name": "Kept"}).json()
    assert readonly_api.get(f"/customers/{customer['id']}").status_code == 200
    refused = readonly_api.post("/customers", {"name": "Sneaky"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert readonly_api.patch(f"/customers/{customer['id']}", {"name": "Changed"}).status_code == 403
    with tenant_context(tenant):
        assert list(Customer.objects.values_list("name", flat=True)) == ["Kept"]


def test_updates_leave_old_and_new_values_in_the_audit_trail(api, tenant):
    customer = api.post("/customers", {"name": "Ada", "email": "ada@old.example"}).json()
    account = api.post("/accounts", {"customer_id": customer["id"], "payment_terms_days": 14}).json()
    api.patch(f"/customers/{customer['id']}", {"email": "ada@new.example"})
    api.patch(f"/accounts/{account['id']}", {"payment_terms_days": 30, "omit_from_dunning": True})
    with tenant_context(tenant):
        assert AuditEvent.objects.get(action="customer.update").changes == {
            "email": ["ada@old.example", "ada@new.example"]}
        event = AuditEvent.objects.get(action="account.update")
    assert event.changes == {"payment_terms_days": [14, 30], "omit_from_dunning": [False, True]}
    assert event.actor_kind == "api_key"
