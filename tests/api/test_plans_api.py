"""Price plans over the API, in the catalog file's format, with versions."""
from datetime import date

import pytest

from obol.catalog.models import Service
from obol.core.clock import frozen
from obol.core.tenancy import tenant_context

pytestmark = pytest.mark.django_db

PLAN = {
    "code": "mobile-xs", "name": "Mobile XS", "currency": "EUR",
    "charges": [
        {"type": "recurring", "code": "monthly-fee", "price": 4.99, "period": "month", "prorate": True},
        {"type": "one_time", "code": "activation", "price": "10.00"},
        {"type": "quantity", "code": "extra-sims", "model": "graduated",
         "tiers": [{"up_to": 2, "unit_price": "3.00"}, {"up_to": None, "unit_price": "2.00"}]},
        {"type": "usage", "code": "voice", "service": "voice", "rate_table": "voice-national"},
    ],
    "allowances": [{"service": "voice", "amount": 100, "unit": "minute"}],
    "effective_from": "2026-01-01",
}


@pytest.fixture(autouse=True)
def mid_january_2026():
    with frozen(date(2026, 1, 15)):
        yield


@pytest.fixture
def voice(tenant):
    with tenant_context(tenant):
        Service.objects.create(code="voice", name="Voice", kind="voice", unit="second")


def test_create_then_change_price_makes_a_new_version(api, voice):
    created = api.post("/plans", PLAN)
    assert created.status_code == 201, created.content
    plan = created.json()
    assert [v["number"] for v in plan["versions"]] == [1]
    fee = plan["versions"][0]["charges"][0]
    assert fee["price"] == "4.99"  # a JSON number, kept exact
    assert plan["versions"][0]["charges"][2]["tiers"][1] == {"up_to": None, "unit_price": "2", "flat_fee": "0"}

    same = api.put(f"/plans/{plan['id']}", {**PLAN, "effective_from": "2026-06-01"})
    assert [v["number"] for v in same.json()["versions"]] == [1]  # nothing priced changed

    dearer = {**PLAN, "effective_from": "2026-07-01",
              "charges": [{**PLAN["charges"][0], "price": "5.99"}, *PLAN["charges"][1:]]}
    changed = api.put(f"/plans/{plan['id']}", dearer).json()
    assert [(v["number"], v["effective_from"], v["charges"][0]["price"]) for v in changed["versions"]] == [
        (1, "2026-01-01", "4.99"), (2, "2026-07-01", "5.99"),
    ]


def test_a_version_may_not_start_before_the_latest(api, voice):
    plan = api.post("/plans", PLAN).json()
    backdated = {**PLAN, "effective_from": "2025-12-01",
                 "charges": [{**PLAN["charges"][0], "price": "1.00"}, *PLAN["charges"][1:]]}
    response = api.put(f"/plans/{plan['id']}", backdated)
    assert response.status_code == 422
    assert "would rewrite history" in response.json()["error"]["message"]
    assert [v["number"] for v in api.get(f"/plans/{plan['id']}").json()["versions"]] == [1]


def test_a_broken_price_names_its_path(api, voice):
    broken = {**PLAN, "charges": [{**PLAN["charges"][0], "price": "9,99"}]}
    response = api.post("/plans", broken)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "charges[0].price"
    assert response.json()["error"]["code"] == "invalid_catalog"
    assert "'9,99' is not a decimal number" in response.json()["error"]["message"]
    assert api.get("/plans").json()["count"] == 0


def test_unknown_service_is_refused_with_its_path(api):
    response = api.post("/plans", PLAN)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_catalog" and error["field"] == "charges[3].service"


def test_creating_an_existing_code_is_a_conflict_and_patch_closes_sales(api, voice):
    plan = api.post("/plans", PLAN).json()
    assert api.post("/plans", PLAN).status_code == 409
    closed = api.patch(f"/plans/{plan['id']}", {"active": False})
    assert closed.status_code == 200 and closed.json()["active"] is False
    assert [p["code"] for p in api.get("/plans", active=True).json()["items"]] == []
    assert [p["code"] for p in api.get("/plans", active=False).json()["items"]] == ["mobile-xs"]


def test_a_new_version_cannot_reprice_days_already_past(api, voice):
    plan = api.post("/plans", PLAN).json()  # version 1 from 2026-01-01 is fine: a new plan
    dearer = {**PLAN, "effective_from": "2026-01-10",
              "charges": [{**PLAN["charges"][0], "price": "5.99"}, *PLAN["charges"][1:]]}
    response = api.put(f"/plans/{plan['id']}", dearer)
    assert response.status_code == 422
    assert "would reprice days already past" in response.json()["error"]["message"]
    today = api.put(f"/plans/{plan['id']}", {**dearer, "effective_from": "2026-01-15"})
    assert [v["effective_from"] for v in today.json()["versions"]] == ["2026-01-01", "2026-01-15"]
