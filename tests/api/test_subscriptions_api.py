"""Subscriptions over the API: subscribe with an MSISDN, change, transitions, history."""
import pytest

from tests.factories import make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def account_id(api, in_tenant):
    make_plan("mobile-s")
    make_plan("mobile-m", price="19.99")
    customer = api.post("/customers", {"name": "Ada"}).json()
    return api.post("/accounts", {"customer_id": customer["id"]}).json()["id"]


def subscribe(api, account_id, **extra):
    body = {"account_id": account_id, "plan": "mobile-s", "start_date": "2026-02-01",
            "identifiers": [{"kind": "msisdn", "value": "+44 7700 900123"}], **extra}
    return api.post("/subscriptions", body)


def test_subscribe_change_and_terminate(api, account_id):
    created = subscribe(api, account_id, quantity="2")
    assert created.status_code == 201, created.content
    sub = created.json()
    assert sub["status"] == "active" and sub["plan"] == "mobile-s" and sub["quantity"] == "2"
    assert sub["identifiers"][0]["value"] == "447700900123"
    assert [s["kind"] for s in sub["timeline"]] == ["create", "activate"]

    changed = api.patch(f"/subscriptions/{sub['id']}", {"plan": "mobile-m", "effective_date": "2026-03-15",
                                                        "reason": "upgrade"})
    assert changed.status_code == 200 and changed.json()["plan"] == "mobile-m"

    terminated = api.post(f"/subscriptions/{sub['id']}/terminate", {"effective_date": "2026-06-30",
                                                                   "reason": "moved abroad"})
    assert terminated.status_code == 200
    assert terminated.json()["status"] == "terminated" and terminated.json()["end_date"] == "2026-06-30"

    again = api.post(f"/subscriptions/{sub['id']}/activate", {"effective_date": "2026-07-01"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "illegal_transition"
    assert "is terminated; cannot activate" in again.json()["error"]["message"]

    history = api.get(f"/subscriptions/{sub['id']}/history").json()
    assert [h["action"] for h in reversed(history)] == [
        "subscription.create", "subscription.activate", "subscription.identifier_attach",
        "subscription.change_plan", "subscription.terminate",
    ]
    assert history[0]["reason"] == "moved abroad" and history[0]["actor_kind"] == "api_key"


def test_msisdn_already_in_use_is_a_conflict(api, account_id):
    assert subscribe(api, account_id).status_code == 201
    second = subscribe(api, account_id)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "identifier_in_use"
    assert api.get("/subscriptions").json()["count"] == 1  # the refused subscription was not kept


def test_search_by_identifier_and_status(api, account_id):
    sub = subscribe(api, account_id).json()
    subscribe(api, account_id, identifiers=[{"kind": "msisdn", "value": "447700900999"}])
    found = api.get("/subscriptions", identifier="447700900123").json()
    assert [s["id"] for s in found["items"]] == [sub["id"]]
    api.post(f"/subscriptions/{sub['id']}/suspend", {"effective_date": "2026-04-01"})
    assert [s["id"] for s in api.get("/subscriptions", status="suspended").json()["items"]] == [sub["id"]]


def test_unknown_plan_code_is_404_with_the_plan_named(api, account_id):
    response = api.post("/subscriptions", {"account_id": account_id, "plan": "nope", "start_date": "2026-02-01"})
    assert response.status_code == 404 and "plan 'nope'" in response.json()["error"]["message"]
