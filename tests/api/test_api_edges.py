"""Edges a client meets: amounts in plain notation, all-or-nothing PATCH, clear errors instead of
server errors, identifier search in any notation, revoked keys, idempotency bound to the caller."""
import pytest

from obol.api.models import ApiKey
from obol.core import clock
from obol.core.tenancy import tenant_context
from tests.factories import make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def account_id(api, in_tenant):
    make_plan("p1")
    make_plan("p2", price="19.99")
    customer = api.post("/customers", {"name": "Ada"}).json()
    return api.post("/accounts", {"customer_id": customer["id"]}).json()["id"]


def test_amounts_are_answered_in_plain_notation(api, account_id):
    response = api.patch(f"/accounts/{account_id}", {"credit_limit": "0.0000001"})
    assert response.json()["credit_limit"] == "0.0000001"
    sub = api.post("/subscriptions", {"account_id": account_id, "plan": "p1", "start_date": "2026-02-01",
                                      "quantity": "1e1"}, **{"Idempotency-Key": "q"}).json()
    assert sub["quantity"] == "10" and sub["timeline"][0]["quantity"] == "10"


def test_patch_with_a_bad_quantity_changes_nothing(api, account_id):
    sub = api.post("/subscriptions", {"account_id": account_id, "plan": "p1", "start_date": "2026-02-01"}).json()
    response = api.patch(f"/subscriptions/{sub['id']}", {"plan": "p2", "quantity": "0",
                                                         "effective_date": "2026-03-01"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "quantity"
    after = api.get(f"/subscriptions/{sub['id']}").json()
    assert after["plan"] == "p1" and [s["kind"] for s in after["timeline"]] == ["create", "activate"]


@pytest.mark.parametrize(
    ("path_body", "field"),
    [
        (("patch", "/accounts/{account_id}", {"credit_limit": "0.0000000000000000001"}), "credit_limit"),
        (("post", "/subscriptions", {"account_id": "{account_id}", "plan": "p1", "start_date": "2026-02-01",
                                     "number": "X" * 41}), "number"),
    ],
)
def test_bad_values_get_a_json_error_naming_the_field(api, account_id, path_body, field):
    method, path, body = path_body
    body = {k: (account_id if v == "{account_id}" else v) for k, v in body.items()}
    response = getattr(api, method)(path.format(account_id=account_id), body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field


def test_a_duplicate_subscription_number_is_a_clear_error(api, account_id):
    body = {"account_id": account_id, "plan": "p1", "start_date": "2026-02-01", "number": "S-1"}
    assert api.post("/subscriptions", body).status_code == 201
    again = api.post("/subscriptions", body)
    assert again.status_code == 422
    assert again.json()["error"] == {"code": "invalid_duplicate", "field": "number",
                                     "message": "number: subscription with this number already exists"}


def test_unparseable_json_is_a_bad_request(api):
    response = api.client.post("/api/v1/customers", data="{not json", content_type="application/json",
                               headers=api.headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_identifier_search_accepts_any_msisdn_notation(api, account_id):
    api.post("/subscriptions", {"account_id": account_id, "plan": "p1", "start_date": "2026-02-01",
                                "identifiers": [{"kind": "msisdn", "value": "33600000001"}]})
    for notation in ["+33600000001", "0033 600 000 001", "33600000001"]:
        assert api.get("/subscriptions", identifier=notation).json()["count"] == 1, notation


def test_a_revoked_key_is_refused(api, tenant):
    assert api.get("/customers").status_code == 200
    with tenant_context(tenant):
        ApiKey.objects.update(revoked_at=clock.now())
    assert api.get("/customers").status_code == 401


def test_an_idempotency_key_belongs_to_the_caller(api, readonly_api):
    first = api.post("/customers", {"name": "Mine"}, **{"Idempotency-Key": "same"})
    replay = readonly_api.post("/customers", {"name": "Mine"}, **{"Idempotency-Key": "same"})
    assert first.status_code == 201
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "idempotency_key_reused"
