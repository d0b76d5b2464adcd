"""The charging routes: a switch's start / update / terminate cycle over HTTP, refusals with their
codes and statuses, replays, and the session as the API shows it."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from obol.balances.models import Pocket
from obol.core.clock import frozen
from obol.core.tenancy import tenant_context
from tests.usage.test_import_pipeline import prepare

pytestmark = pytest.mark.django_db
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
MOBILE, PREPAID = "491701234567", "491522222222"


@pytest.fixture
def setup(tenant, system, clerk):
    with tenant_context(tenant):
        return prepare(tenant, system, clerk)


def test_a_call_over_http(setup, api, tenant):
    with frozen(TUESDAY_10):
        started = api.post("/charging/sessions", {"request_id": "i-1", "subscriber": PREPAID, "service": "voice",
                                                  "destination": MOBILE, "requested": 300})
        assert started.status_code == 201, started.content
        body = started.json()
        assert (body["code"], body["granted"]) == ("ok", 300) and body["valid_until"]
        sid = body["session_id"]
        update = api.post(f"/charging/sessions/{sid}/update", {"request_id": "u-1", "used": 300, "requested": 600})
        assert update.status_code == 200 and update.json()["granted"] == 300
        final = api.post(f"/charging/sessions/{sid}/terminate", {"request_id": "t-1", "used": 61})
        replay = api.post(f"/charging/sessions/{sid}/terminate", {"request_id": "t-1", "used": 61})
    assert final.status_code == 200 and final.json()["charged"] == "0.7" and final.json()["used"] == 361
    assert replay.json() == final.json()
    shown = api.get(f"/charging/sessions/{sid}").json()
    assert (shown["state"], shown["used"], shown["charged"], shown["holds"]) == ("terminated", 361, "0.7", {})
    with tenant_context(tenant):
        assert Pocket.objects.get(account__number="A-2", source="topup").balance == Decimal("0.30")


def test_refusals_have_their_codes_and_statuses(setup, api):
    with frozen(TUESDAY_10):
        unknown = api.post("/charging/sessions", {"request_id": "x", "subscriber": "491999999999",
                                                  "service": "voice", "destination": MOBILE, "requested": 60})
        too_much = api.post("/charging/events", {"request_id": "e", "subscriber": PREPAID, "service": "voice",
                                                 "destination": MOBILE, "quantity": 3600})
        no_session = api.post("/charging/sessions/0b7c1f7e-0000-4000-8000-000000000000/terminate",
                              {"request_id": "t", "used": 1})
        invalid = api.post("/charging/sessions", {"request_id": "y", "subscriber": PREPAID, "service": "voice",
                                                  "requested": -1})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_subscriber")
    assert (too_much.status_code, too_much.json()["code"]) == (402, "no_credit")  # 60 min = 6.00 > 1.00
    assert (no_session.status_code, no_session.json()["code"]) == (404, "unknown_session")
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "requested"
    assert api.get("/charging/sessions/nope").status_code == 404


def test_the_routes_need_a_key_that_may_write(setup, readonly_api):
    answer = readonly_api.post("/charging/events", {"request_id": "r", "subscriber": PREPAID, "service": "sms"})
    assert answer.status_code == 403


def test_a_prepaid_call_appears_in_the_accounts_usage_history(setup, api, tenant):
    with frozen(TUESDAY_10):
        sid = api.post("/charging/sessions", {"request_id": "h-1", "subscriber": PREPAID, "service": "voice",
                                              "destination": MOBILE, "requested": 120}).json()["session_id"]
        api.post(f"/charging/sessions/{sid}/terminate", {"request_id": "h-2", "used": 75})
    with tenant_context(tenant):
        from obol.customers.models import BillingAccount
        account_id = BillingAccount.objects.get(number="A-2").pk
    history = api.get(f"/accounts/{account_id}/usage").json()["items"]
    assert [(r["key"], r["quantity"], r["price"]) for r in history] == [(f"charging:{sid}", 75, "0.2")]
