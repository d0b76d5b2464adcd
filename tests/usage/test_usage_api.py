"""Usage over the API: an account's rated records (filters, pagination, exact prices), the summary
per subscription, service and destination group (hand-computed from the sample tariffs and checked
against the stored records), the files, the open suspense, and another tenant's account (404)."""
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from obol.catalog.models import PricePlan
from obol.core.clock import frozen
from obol.subscriptions import services as subscriptions
from obol.usage import pipeline
from obol.usage.models import RatedRecord, UsageFile
from tests.factories import make_account
from tests.usage.test_import_pipeline import ACTOR, call, prepare, write_jsonl

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


def sms(n, msisdn, start, destination):
    return {"id": f"s{n}", "service": "sms", "identifier": msisdn, "start": start, "destination": destination,
            "events": 1}


def data(n, msisdn, start, megabytes):
    return {"id": f"d{n}", "service": "data", "identifier": msisdn, "start": start, "volume_bytes": megabytes * MB}


@pytest.fixture
def usage(in_tenant, system, clerk, tmp_path):
    """Account A-3 (postpaid) with a pay-as-you-go line and a Mobile S line (allowances), and one
    file of their usage with a line of an unknown subscriber (suspense)."""
    prepare(in_tenant, system, clerk)
    account = make_account("A-3", mode="postpaid")
    with frozen(date(2026, 3, 1)):
        payg = subscriptions.subscribe(clerk, account, PricePlan.objects.get(code="payg"), start_date=date(2026, 3, 1),
                                       identifiers_=[{"kind": "msisdn", "value": "491533333333"}])
        bundle = subscriptions.subscribe(clerk, account, PricePlan.objects.get(code="mobile-s"),
                                         start_date=date(2026, 3, 1),
                                         identifiers_=[{"kind": "msisdn", "value": "491533333334"}])
    rows = [
        # Tuesday 10 March, 11:00 and 16:00 Berlin: peak. Saturday 14 March: weekend.
        call(1, "491533333333", "2026-03-10T10:00:00Z", 120),                         # fixed 2 min x 0.09
        call(2, "491533333333", "2026-03-10T15:00:00Z", 60, destination="4915112345678"),  # mobile 1 x 0.10
        call(3, "491533333333", "2026-03-14T10:00:00Z", 180),                         # fixed weekend 3 x 0.03
        sms(4, "491533333333", "2026-03-11T10:00:00Z", "4915112345678"),                 # 0.09
        data(5, "491533333333", "2026-03-12T10:00:00Z", 10),                           # 10 MB x 0.01
        call(6, "491533333334", "2026-03-10T11:00:00Z", 240),                         # Mobile S minutes: 0
        call(7, "491599999999", "2026-03-10T12:00:00Z", 30),                          # unknown: suspense
    ]
    summary = pipeline.import_file(ACTOR, write_jsonl(tmp_path / "day.jsonl", rows), fmt="jsonl")
    assert summary.rated == 6 and summary.suspended == {"unknown_identifier": 1}
    return {"account": account, "payg": payg, "bundle": bundle}


def test_the_history_lists_an_accounts_records_with_exact_prices(api, usage):
    account = usage["account"]
    response = api.get(f"/accounts/{account.pk}/usage")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 6
    assert [r["key"] for r in body["items"]] == ["jsonl:c1", "jsonl:c6", "jsonl:c2", "jsonl:s4", "jsonl:d5",
                                                "jsonl:c3"]  # oldest first
    first = body["items"][0]
    assert first == {"key": "jsonl:c1", "start": "2026-03-10T10:00:00Z", "subscription_id": usage["payg"].pk,
                     "service": "voice", "destination": "4930123456", "destination_group": "national-fixed",
                     "time_band": "peak", "quantity": 120, "included": 0, "charged": 120, "billed": 120,
                     "price": "0.18", "currency": "EUR", "uncovered": False}
    by_key = {r["key"]: r for r in body["items"]}
    assert by_key["jsonl:c6"]["included"] == 240 and by_key["jsonl:c6"]["price"] == "0"
    assert by_key["jsonl:c3"]["time_band"] == "weekend" and by_key["jsonl:c3"]["price"] == "0.09"
    for record in RatedRecord.objects.all():  # every price is the stored micro-units / 1,000,000 exactly
        assert Decimal(by_key[record.record_key]["price"]) * 1_000_000 == record.price_micros


def test_the_history_filters_and_pages(api, usage):
    url = f"/accounts/{usage['account'].pk}/usage"

    def keys(**params):
        response = api.get(url, **params)
        assert response.status_code == 200, response.content
        return [r["key"] for r in response.json()["items"]]

    assert keys(service="voice") == ["jsonl:c1", "jsonl:c6", "jsonl:c2", "jsonl:c3"]
    assert keys(subscription_id=usage["bundle"].pk) == ["jsonl:c6"]
    # [11 March 00:00 Berlin, 14 March 00:00 UTC): a time without zone is the tenant's local time
    assert keys(**{"from": "2026-03-11T00:00:00", "to": "2026-03-14T00:00:00Z"}) == ["jsonl:s4", "jsonl:d5"]
    assert keys(**{"from": "2026-03-10T11:00:00Z"}) == ["jsonl:c6", "jsonl:c2", "jsonl:s4", "jsonl:d5", "jsonl:c3"]
    assert keys(limit=2, offset=0) == ["jsonl:c1", "jsonl:c6"]
    assert keys(limit=2, offset=4) == ["jsonl:d5", "jsonl:c3"]
    assert api.get(url, limit=2).json()["count"] == 6
    reversed_period = api.get(url, **{"from": "2026-03-14T00:00:00Z", "to": "2026-03-10T00:00:00Z"})
    assert reversed_period.status_code == 422 and reversed_period.json()["error"]["field"] == "to"


def test_the_summary_adds_up_the_stored_records(api, usage):
    account, payg, bundle = usage["account"], usage["payg"].pk, usage["bundle"].pk
    response = api.get(f"/accounts/{account.pk}/usage/summary")
    assert response.status_code == 200, response.content
    groups = {(g["subscription_id"], g["service"], g["destination_group"]): g for g in response.json()}
    # Hand-computed from the sample tariffs (see the fixture).
    expected = {
        (payg, "voice", "national-fixed"): (2, 300, 0, "0.27"),
        (payg, "voice", "national-mobile"): (1, 60, 0, "0.1"),
        (payg, "sms", "national-mobile"): (1, 1, 0, "0.09"),
        (payg, "data", "national-data"): (1, 10 * MB, 0, "0.1"),
        (bundle, "voice", "national-fixed"): (1, 240, 240, "0"),
    }
    assert {k: (g["count"], g["quantity"], g["included"], g["price"]) for k, g in groups.items()} == expected
    assert {g["currency"] for g in groups.values()} == {"EUR"}
    # ... and every sum equals the stored records' (billed and charged too).
    stored = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in RatedRecord.objects.filter(account=account):
        for i, value in enumerate((1, r.quantity, r.included, r.charged, r.billed, r.price_micros)):
            stored[(r.subscription_id, r.service, r.destination_group)][i] += value
    assert {k: [g["count"], g["quantity"], g["included"], g["charged"], g["billed"],
                int(Decimal(g["price"]) * 1_000_000)] for k, g in groups.items()} == dict(stored)

    weekend = api.get(f"/accounts/{account.pk}/usage/summary", **{"from": "2026-03-13T00:00:00Z"}).json()
    assert [(g["service"], g["count"], g["quantity"], g["price"]) for g in weekend] == [("voice", 1, 180, "0.09")]


def test_another_tenants_account_is_not_found(api, other_api, usage):
    account = usage["account"].pk
    for path in (f"/accounts/{account}/usage", f"/accounts/{account}/usage/summary"):
        response = other_api.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert other_api.get("/usage/files").json()["count"] == 0
    assert other_api.get("/usage/suspense").json()["by_reason"] == []
    assert api.get("/accounts/999999/usage").status_code == 404


def test_files_and_open_suspense(readonly_api, usage):
    files = readonly_api.get("/usage/files").json()
    assert files["count"] == 1
    [row] = files["items"]
    assert (row["state"], row["read"], row["rated"], row["suspended"]) == ("done", 7, 6, 1)
    assert row["name"].endswith("day.jsonl") and row["id"] == UsageFile.objects.get().pk
    assert readonly_api.get("/usage/files", state="failed").json()["count"] == 0

    overview = readonly_api.get("/usage/suspense").json()
    assert overview["by_reason"] == [{"reason": "unknown_identifier", "count": 1}] and overview["records"] == []
    listed = readonly_api.get("/usage/suspense", reason="unknown_identifier").json()
    assert listed["count"] == 1
    [record] = listed["records"]
    assert (record["line"], record["record_key"]) == (7, "jsonl:c7")
    assert "491599999999" in record["message"] and "491599999999" in record["raw"]
    assert record["record"]["identifier"] == "491599999999"
    assert readonly_api.get("/usage/suspense", reason="no_rate").json() == {
        "by_reason": overview["by_reason"], "reason": "no_rate", "count": 0, "records": []}
