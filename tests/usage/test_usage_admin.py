"""Usage in the back office: files with their suspense by reason, rated records (read-only, prices
as money, filters and search), suspense with the original line and the parsed record, and the
actions "recycle open records" and "drop selected" (clerks yes, read-only staff no)."""
import re
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from obol.catalog.models import PricePlan
from obol.core.clock import frozen
from obol.core.models import AuditEvent, StaffProfile
from obol.subscriptions import services as subscriptions
from obol.usage import pipeline
from obol.usage.admin import price_text
from obol.usage.models import RatedRecord, SuspendedRecord, UsageFile
from tests.factories import make_account
from tests.usage.test_import_pipeline import ACTOR, call, prepare, write_jsonl

pytestmark = pytest.mark.django_db
SUSPENSE = "/admin/usage/suspendedrecord/"


def staff_client(tenant, username, role) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def imported(in_tenant, system, clerk, tmp_path):
    """Two calls of the postpaid Mobile S subscriber (within its minutes) and one of the prepaid
    one, a call of an unknown MSISDN (suspense) and a broken line (suspense)."""
    prepare(in_tenant, system, clerk)
    rows = [call(1, "491511111111", "2026-03-10T10:00:00Z", 120), call(2, "491522222222", "2026-03-10T10:05:00Z", 60),
            call(3, "491511111111", "2026-03-14T10:00:00Z", 60, destination="4915112345678"),
            call(4, "491533333333", "2026-03-10T11:00:00Z", 120)]
    path = write_jsonl(tmp_path / "cdr-0310.jsonl", rows, bad_lines=('{"id": "x", "service": "voice"',))
    summary = pipeline.import_file(ACTOR, path, fmt="jsonl")
    assert summary.rated == 3 and summary.suspended == {"unknown_identifier": 1, "malformed_line": 1}
    return UsageFile.objects.get()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_price_text_is_exact_money_for_display():
    assert price_text(90_000, "EUR") == "0.090000 EUR"
    assert price_text(1, "EUR") == "0.000001 EUR"
    assert price_text(12_345_678_901_234_567, "BTC") == "12345678901.234567 BTC"


def test_the_usage_pages_open_for_an_admin(tenant, imported):
    client = staff_client(tenant, "boss", "admin")
    files = client.get("/admin/usage/usagefile/").content.decode()
    assert "cdr-0310.jsonl" in files
    page = client.get(f"/admin/usage/usagefile/{imported.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "unknown_identifier</a>: 1 open, 0 recycled, 0 dropped" in text
    assert "malformed_line</a>: 1 open, 0 recycled, 0 dropped" in text
    [link] = re.findall(r'href="([^"]*reason__exact=unknown_identifier)"', text)
    linked = client.get(link.replace("&amp;", "&")).content.decode()
    unknown = SuspendedRecord.objects.get(reason="unknown_identifier")
    broken = SuspendedRecord.objects.get(reason="malformed_line")
    assert f"{SUSPENSE}{unknown.pk}/change/" in linked and f"{SUSPENSE}{broken.pk}/change/" not in linked

    records = client.get("/admin/usage/ratedrecord/")
    assert records.status_code == 200
    prepaid = RatedRecord.objects.get(record_key="jsonl:c2")
    assert prepaid.price_micros == 90_000  # 1 minute to Berlin, peak, pay as you go: 0.09 EUR
    assert "0.090000 EUR" in records.content.decode()
    voice = client.get("/admin/usage/ratedrecord/?service=voice&time_band=weekend").content.decode()
    assert "jsonl:c3" in voice and "jsonl:c1" not in voice
    found = client.get("/admin/usage/ratedrecord/?q=A-2").content.decode()
    assert "jsonl:c2" in found and "jsonl:c1" not in found
    assert client.get(f"/admin/usage/ratedrecord/{prepaid.pk}/change/").status_code == 200
    assert client.get("/admin/usage/ratedrecord/add/").status_code == 403

    listing = client.get(f"{SUSPENSE}?reason=unknown_identifier").content.decode()
    assert f"{SUSPENSE}{unknown.pk}/change/" in listing and f"{SUSPENSE}{broken.pk}/change/" not in listing
    found = client.get(f"{SUSPENSE}?q=491533333333").content.decode()
    assert f"{SUSPENSE}{unknown.pk}/change/" in found and f"{SUSPENSE}{broken.pk}/change/" not in found
    detail = client.get(f"{SUSPENSE}{unknown.pk}/change/").content.decode()
    assert "&quot;identifier&quot;: &quot;491533333333&quot;, &quot;start&quot;" in detail  # the original line
    assert re.search(r"\n\s+&quot;identifier&quot;: &quot;491533333333&quot;,\n", detail)  # the parsed record
    assert 'name="reason"' not in detail  # nothing to edit


def test_read_only_staff_can_neither_drop_nor_recycle(tenant, imported):
    client = staff_client(tenant, "viewer", "readonly")
    assert client.get(SUSPENSE).status_code == 200
    rows = list(SuspendedRecord.objects.values_list("pk", flat=True))
    for action in ("drop_selected", "recycle_open"):
        client.post(SUSPENSE, {"action": action, "_selected_action": rows})
    assert set(SuspendedRecord.objects.values_list("state", flat=True)) == {"open"}
    assert not AuditEvent.objects.filter(action="suspendedrecord.drop").exists()
    assert "drop_selected" not in client.get(SUSPENSE).content.decode()


def test_a_clerk_recycles_after_adding_the_subscription(tenant, imported, clerk):
    staff = staff_client(tenant, "clerkuser", "clerk")
    unknown = SuspendedRecord.objects.get(reason="unknown_identifier")
    nothing_yet = staff.post(SUSPENSE, {"action": "recycle_open", "_selected_action": [unknown.pk]}, follow=True)
    assert "recycled 1: rated 0, still suspended: unknown_identifier 1" in messages_of(nothing_yet)
    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, make_account("A-3", mode="postpaid"), PricePlan.objects.get(code="payg"),
                                start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491533333333"}])
    response = staff.post(SUSPENSE, {"action": "recycle_open", "_selected_action": [unknown.pk]}, follow=True)
    assert "recycled 1: rated 1, still suspended: none" in messages_of(response)
    record = RatedRecord.objects.get(record_key="jsonl:c4")
    assert (record.account.number, record.quantity, record.price_micros) == ("A-3", 120, 180_000)  # 2 x 0.09
    unknown.refresh_from_db()
    assert unknown.state == "recycled" and unknown.resolved_at is not None
    assert SuspendedRecord.objects.get(reason="malformed_line").state == "open"  # not recyclable: left alone


def test_a_clerk_drops_selected_suspense_and_the_audit_trail_says_so(tenant, imported):
    staff = staff_client(tenant, "clerkuser", "clerk")
    assert "drop_selected" in staff.get(SUSPENSE).content.decode()
    broken = SuspendedRecord.objects.get(reason="malformed_line")
    response = staff.post(SUSPENSE, {"action": "drop_selected", "_selected_action": [broken.pk]}, follow=True)
    assert "1 suspense record(s) dropped" in messages_of(response)
    broken.refresh_from_db()
    assert broken.state == "dropped" and broken.resolved_at is not None
    assert SuspendedRecord.objects.get(reason="unknown_identifier").state == "open"
    event = AuditEvent.objects.get(action="suspendedrecord.drop")
    assert (event.object_id, event.actor_label, event.reason) == (str(broken.pk), "clerkuser",
                                                                   "dropped in the back office")
    assert event.changes == {"state": ["open", "dropped"]}
    again = staff.post(SUSPENSE, {"action": "drop_selected", "_selected_action": [broken.pk]}, follow=True)
    assert "0 suspense record(s) dropped" in messages_of(again)  # dropped once, audited once
    assert AuditEvent.objects.filter(action="suspendedrecord.drop").count() == 1
