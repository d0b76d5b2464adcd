"""Invoices over the API (billing/api.py): a one-off invoice worked out by hand, accepted and issued
with its number from the series; generate on demand; credit notes; the PDF; lists with filters;
errors in the one shape (a bad amount names its field, a wrong step is a 409); roles."""
import io
from datetime import date
from decimal import Decimal as D

import pytest
from pypdf import PdfReader

from obol.billing.models import Invoice, TaxRate
from obol.core.actors import Actor
from obol.core.audit import history
from obol.core.tenancy import tenant_context
from obol.customers.models import Contact
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db

VISIT = {"date": "2026-11-12", "items": [
    {"name": "Technician visit", "amount": "100.00", "tax_category": "standard"},
    {"name": "Manual", "amount": "10.00", "tax_category": "reduced"},
]}


@pytest.fixture
def account(tenant):
    """Account A-1 of a German customer; German VAT: 19% standard, 7% reduced."""
    with tenant_context(tenant):
        for category, rate in (("standard", "19"), ("reduced", "7")):
            TaxRate.objects.create(country="DE", category=category, rate=D(rate), valid_from=date(2020, 1, 1))
        return make_account("A-1")


def one_off(api, body=VISIT, number="A-1", **headers):
    return api.post(f"/billing/accounts/{number}/one-off-invoices", body, **headers)


def test_a_one_off_invoice_is_worked_out_accepted_and_issued(api, account):
    created = one_off(api)
    assert created.status_code == 201, created.content
    draft = created.json()
    assert (draft["state"], draft["kind"], draft["number"]) == ("draft", "invoice", "")
    assert draft["account"] == "A-1"
    assert [(line["name"], line["amount"], line["tax_rate"]) for line in draft["lines"]] == [
        ("Technician visit", "100", "19"), ("Manual", "10", "7")]
    # VAT per rate: 100.00 x 19% = 19.00, 10.00 x 7% = 0.70; amounts are canonical strings
    assert [(t["rate"], t["taxable"], t["tax"]) for t in draft["taxes"]] == [
        ("19", "100", "19"), ("7", "10", "0.7")]
    assert (draft["net"], draft["tax"], draft["gross"]) == ("110", "19.7", "129.7")
    assert draft["invoice_date"] == "2026-11-12" and draft["due_date"] is None

    accepted = api.post(f"/billing/invoices/{draft['id']}/accept", {"reason": "checked"})
    assert accepted.status_code == 200 and accepted.json()["state"] == "accepted"
    issued = api.post(f"/billing/invoices/{draft['id']}/issue", {"on": "2026-11-12"})
    assert issued.status_code == 200, issued.content
    body = issued.json()
    assert (body["state"], body["number"], body["issue_date"]) == ("issued", "INV/2026/000001", "2026-11-12")
    assert (body["due_date"], body["open_amount"]) == ("2026-11-26", "129.7")  # 14 days' payment terms

    read = api.get(f"/billing/invoices/{draft['id']}").json()
    assert read == body
    pdf = api.get(f"/billing/invoices/{draft['id']}/pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "INV/2026/000001" in text and "129.70" in text
    assert api.get(f"/billing/invoices/{draft['id']}/pdf").content == pdf.content  # stored once


@pytest.mark.parametrize(("amount", "code", "field"), [
    ("ten", "invalid_request", "items[1].amount"),
    ("10.005", "invalid", "items[1].amount"),  # more decimals than EUR: the service names the item too
])
def test_a_bad_amount_is_refused_naming_the_field(api, account, amount, code, field):
    body = {"items": [VISIT["items"][0], {**VISIT["items"][1], "amount": amount}]}
    response = one_off(api, body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert "amount" in error["message"]
    assert api.get("/billing/invoices").json()["count"] == 0


def test_issuing_a_draft_that_is_not_accepted_is_a_conflict(api, account):
    draft = one_off(api).json()
    response = api.post(f"/billing/invoices/{draft['id']}/issue", {})
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("illegal_transition", "state")
    assert "cannot issue" in error["message"] and "draft" in error["message"]
    assert api.get(f"/billing/invoices/{draft['id']}").json()["state"] == "draft"


def test_unknown_account_and_invoice_are_404(api, account):
    assert one_off(api, number="A-404").json()["error"]["code"] == "not_found"
    assert api.post("/billing/invoices/999999/accept", {}).status_code == 404
    assert api.get("/billing/invoices/999999").status_code == 404


def test_a_step_without_a_body_is_fine(api, account):
    draft = one_off(api).json()
    response = api.client.generic("POST", f"/api/v1/billing/invoices/{draft['id']}/accept", b"",
                                  headers=api.headers)
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "accepted"


def test_cancel_and_the_audit_of_each_step(api, account, tenant):
    draft = one_off(api).json()
    cancelled = api.post(f"/billing/invoices/{draft['id']}/cancel", {"reason": "wrong account"})
    assert cancelled.json()["state"] == "cancelled"
    again = api.post(f"/billing/invoices/{draft['id']}/accept", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    with tenant_context(tenant):
        actions = [(event.action, event.reason) for event in history(Invoice.objects.get(pk=draft["id"]))]
    assert actions == [("invoice.cancelled", "wrong account"), ("invoice.generated", "")]  # newest first


def test_generate_on_demand_answers_the_draft_or_nothing_due(api, account, tenant):
    with tenant_context(tenant):
        plan = make_plan("basic", price="30.00")
        subscriptions.subscribe(Actor.process("test"), account, plan, start_date=date(2026, 11, 16))
    response = api.post("/billing/accounts/A-1/invoices", {"date": "2026-11-16"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["nothing_due"] is False and "A-1" in body["message"]
    invoice = body["invoice"]
    # 16-30 November of 30.00/month in advance: 15 of 30 days = 15.00, VAT 2.85
    assert [(line["service_start"], line["service_end"], line["amount"]) for line in invoice["lines"]] == [
        ("2026-11-16", "2026-12-01", "15")]
    assert (invoice["net"], invoice["tax"], invoice["gross"]) == ("15", "2.85", "17.85")
    again = api.post("/billing/accounts/A-1/invoices", {"date": "2026-11-16"}).json()
    assert again["invoice"]["id"] == invoice["id"]

    api.post(f"/billing/invoices/{invoice['id']}/accept", {})
    api.post(f"/billing/invoices/{invoice['id']}/issue", {"on": "2026-11-16"})
    nothing = api.post("/billing/accounts/A-1/invoices", {"date": "2026-11-20"})
    assert nothing.status_code == 200
    assert nothing.json() == {"nothing_due": True, "invoice": None,
                              "message": "account A-1: nothing is due on 2026-11-20"}


def test_credit_notes_partial_then_whole(api, account):
    invoice = one_off(api).json()
    api.post(f"/billing/invoices/{invoice['id']}/accept", {})
    api.post(f"/billing/invoices/{invoice['id']}/issue", {"on": "2026-11-12"})
    visit_line = invoice["lines"][0]["id"]

    partial = api.post(f"/billing/invoices/{invoice['id']}/credit-notes",
                       {"amounts": {str(visit_line): "50.00"}, "reason": "goodwill"})
    assert partial.status_code == 201, partial.content
    note = partial.json()
    assert (note["kind"], note["state"], note["credited_id"]) == ("credit_note", "draft", invoice["id"])
    assert note["credited"]["number"] == "INV/2026/000001"
    assert (note["net"], note["tax"], note["gross"]) == ("-50", "-9.5", "-59.5")  # 19% of 50.00
    assert [line["credits_id"] for line in note["lines"]] == [visit_line]

    too_much = api.post(f"/billing/invoices/{invoice['id']}/credit-notes",
                        {"amounts": {str(visit_line): "50.01"}})
    assert too_much.status_code == 422 and too_much.json()["error"]["field"] == "amounts"
    assert "up to 50.00" in too_much.json()["error"]["message"]

    api.post(f"/billing/invoices/{note['id']}/accept", {})
    issued = api.post(f"/billing/invoices/{note['id']}/issue", {"on": "2026-11-13"}).json()
    assert (issued["number"], issued["open_amount"]) == ("CN/2026/000001", "0")
    assert api.get(f"/billing/invoices/{invoice['id']}").json()["open_amount"] == "70.2"  # 129.70 - 59.50

    # the whole invoice: what is left, 50.00 at 19% and 10.00 at 7%; VAT 19.00 - 9.50 and 0.70
    rest = api.post(f"/billing/invoices/{invoice['id']}/credit-notes", {}).json()
    assert (rest["net"], rest["tax"], rest["gross"]) == ("-60", "-10.2", "-70.2")
    credited = api.get(f"/billing/invoices/{invoice['id']}").json()
    assert [n["id"] for n in credited["credit_notes"]] == sorted([note["id"], rest["id"]])

    draft = one_off(api).json()
    refused = api.post(f"/billing/invoices/{draft['id']}/credit-notes", {})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "illegal_transition"


def test_send_needs_a_billing_contact_and_then_marks_the_invoice_sent(api, account, tenant):
    invoice = one_off(api).json()
    api.post(f"/billing/invoices/{invoice['id']}/accept", {})
    api.post(f"/billing/invoices/{invoice['id']}/issue", {"on": "2026-11-12"})
    refused = api.post(f"/billing/invoices/{invoice['id']}/send", {})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "billing_contact"
    with tenant_context(tenant):
        account.billing_contact = Contact.objects.create(customer=account.customer, role="billing",
                                                         name="Ada", email="ada@example.org")
        account.save()
    sent = api.post(f"/billing/invoices/{invoice['id']}/send", {})
    assert sent.status_code == 200 and sent.json()["state"] == "sent"


def test_the_list_filters_and_pages(api, account, tenant):
    with tenant_context(tenant):
        make_account("A-2")
    small = {"date": "2026-10-01", "items": [{"name": "SIM", "amount": "5.00"}]}
    ids = [one_off(api, body, number).json()["id"] for body, number in
           ((VISIT, "A-1"), (small, "A-1"), (small, "A-2"))]
    api.post(f"/billing/invoices/{ids[0]}/accept", {})
    api.post(f"/billing/invoices/{ids[0]}/issue", {"on": "2026-11-12"})

    def found(**params):
        page = api.get("/billing/invoices", **params).json()
        return sorted(item["id"] for item in page["items"])

    assert found() == sorted(ids)
    assert found(account="A-2") == [ids[2]]
    assert found(state="issued") == [ids[0]] and found(state="draft") == sorted(ids[1:])
    assert found(number="INV/2026/000001") == [ids[0]]
    assert found(kind="credit_note") == []
    assert found(**{"from": "2026-11-01"}) == [ids[0]]
    assert found(to="2026-11-01") == sorted(ids[1:])
    assert found(min_gross="100") == [ids[0]] and found(max_gross="5.95") == sorted(ids[1:])  # 5.00 + 19%
    assert found(min_gross="9", max_gross="10") == []
    page = api.get("/billing/invoices", limit=2, offset=0).json()
    assert page["count"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["id"] == ids[0]  # newest invoice date first
    bad = api.get("/billing/invoices", state="paid")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "state"


def test_a_read_only_key_reads_but_changes_nothing(api, readonly_api, account):
    draft = one_off(api).json()
    assert readonly_api.get(f"/billing/invoices/{draft['id']}").status_code == 200
    assert readonly_api.get("/billing/invoices").json()["count"] == 1
    for response in (one_off(readonly_api), readonly_api.post(f"/billing/invoices/{draft['id']}/accept", {}),
                     readonly_api.post("/billing/accounts/A-1/invoices", {"date": "2026-11-12"})):
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    api.post(f"/billing/invoices/{draft['id']}/accept", {})
    api.post(f"/billing/invoices/{draft['id']}/issue", {"on": "2026-11-12"})
    for step in ("send", "credit-notes"):
        response = readonly_api.post(f"/billing/invoices/{draft['id']}/{step}", {"to": "x@example.org"})
        assert response.status_code == 403, step
    assert api.get(f"/billing/invoices/{draft['id']}").json()["state"] == "issued"


def test_an_idempotency_key_makes_one_invoice(api, account, tenant):
    first = one_off(api, **{"Idempotency-Key": "visit-1"})
    again = one_off(api, **{"Idempotency-Key": "visit-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    with tenant_context(tenant):
        assert Invoice.objects.count() == 1
    step = api.post(f"/billing/invoices/{first.json()['id']}/accept", {}, **{"Idempotency-Key": "accept-1"})
    repeat = api.post(f"/billing/invoices/{first.json()['id']}/accept", {}, **{"Idempotency-Key": "accept-1"})
    assert step.status_code == repeat.status_code == 200 and repeat.json()["state"] == "accepted"
