"""Billing in the back office: a template change is a new version, previewed as a PDF on the
tenant's latest invoice; an invoice's PDF opens from its list; a one-off invoice from its form; the
list actions and the invoice page's buttons take invoices through their life."""
import io
from datetime import date
from decimal import Decimal as D

import pytest
from django.contrib.auth import get_user_model
from pypdf import PdfReader

from obol.billing import services as billing
from obol.billing.models import Invoice, InvoiceTemplate, TaxRate
from obol.core import clock
from obol.core.audit import history
from obol.core.models import StaffProfile
from obol.core.roles import Role
from obol.customers.models import BillingAccount
from tests.billing.test_documents import invoice  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def pdf_text(response) -> str:
    assert response["Content-Type"] == "application/pdf"
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)


def test_a_template_change_is_a_new_version_and_its_preview_is_a_pdf(staff, invoice, system):  # noqa: F811
    url = "/admin/billing/invoicetemplate/"
    staff.post(f"{url}add/", {"language": "", "html": "<p>Bill {{ gross }}</p>", "css": "", "note": "first"})
    first = InvoiceTemplate.objects.get()
    staff.post(f"{url}{first.pk}/change/", {"language": "", "html": "<p>Bill, total {{ gross }}</p>", "css": "",
                                            "note": "wording"})
    assert list(InvoiceTemplate.objects.order_by("version").values_list("version", "html", "created_by")) == [
        (1, "<p>Bill {{ gross }}</p>", "anna"), (2, "<p>Bill, total {{ gross }}</p>", "anna")]
    second = InvoiceTemplate.objects.get(version=2)
    assert pdf_text(staff.get(f"{url}{first.pk}/preview/")).strip() == "Bill 17.85"
    assert pdf_text(staff.get(f"{url}{second.pk}/preview/")).strip() == "Bill, total 17.85"


def test_an_invoice_pdf_opens_from_the_admin(staff, invoice, seller, system):  # noqa: F811
    invoice = billing.issue(system, billing.accept(system, invoice))
    page = staff.get("/admin/billing/invoice/").content.decode()
    assert f"/admin/billing/invoice/{invoice.pk}/pdf/" in page
    assert invoice.number in pdf_text(staff.get(f"/admin/billing/invoice/{invoice.pk}/pdf/"))
    assert invoice.number in pdf_text(staff.get(f"/admin/billing/invoice/{invoice.pk}/facturx/"))
    ubl = staff.get(f"/admin/billing/invoice/{invoice.pk}/ubl/")
    assert ubl["Content-Type"] == "application/xml" and invoice.number.encode() in ubl.content


# --- one-off invoices and the invoice steps in the back office -------------------------------------

def _draft(system, number="A-1", amount="100.00"):
    from tests.factories import make_account
    account = BillingAccount.objects.filter(number=number).first() or make_account(number)
    return billing.one_off(system, account, [("Technician visit", D(amount), "standard")], date(2026, 11, 12))


def _page(response) -> str:
    return response.content.decode()


@pytest.fixture
def rates(in_tenant):
    """German VAT: 19% standard, 7% reduced."""
    for category, rate in (("standard", "19"), ("reduced", "7")):
        TaxRate.objects.create(country="DE", category=category, rate=D(rate), valid_from=date(2020, 1, 1))


def _one_off_form(account="A-1", day="2026-11-12", lines=()):
    data = {"account": account, "day": day, "reason": "visit on site",
            "lines-TOTAL_FORMS": "4", "lines-INITIAL_FORMS": "0"}
    for n, (name, amount, category) in enumerate(lines):
        data |= {f"lines-{n}-name": name, f"lines-{n}-amount": amount, f"lines-{n}-tax_category": category}
    return data


def test_the_one_off_form_creates_the_draft(staff, rates, system):
    from tests.factories import make_account
    make_account("A-1")
    listing = _page(staff.get("/admin/billing/invoice/"))
    assert "/admin/billing/invoice/one-off/" in listing
    form = _page(staff.get("/admin/billing/invoice/one-off/?account=A-1"))
    assert 'value="A-1"' in form and '<option value="reduced">' in form

    response = staff.post("/admin/billing/invoice/one-off/", _one_off_form(lines=[
        ("Technician visit", "100.00", "standard"), ("Manual", "10.00", "reduced")]))
    draft = Invoice.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/billing/invoice/{draft.pk}/change/"
    # 100.00 x 19% = 19.00 and 10.00 x 7% = 0.70
    assert (draft.state, draft.invoice_date) == ("draft", date(2026, 11, 12))
    assert (draft.net, draft.tax, draft.gross) == (D("110.00"), D("19.70"), D("129.70"))
    assert [(line.name, line.amount, line.tax_rate) for line in draft.lines.order_by("position")] == [
        ("Technician visit", D("100.00"), D("19")), ("Manual", D("10.00"), D("7"))]
    assert history(draft).get().actor_label == "anna" and history(draft).get().reason == "visit on site"
    assert "129.70" in _page(staff.get(response["Location"]))


def test_the_one_off_form_shows_what_is_wrong(staff, rates):
    from tests.factories import make_account
    make_account("A-1")
    unknown = _page(staff.post("/admin/billing/invoice/one-off/", _one_off_form(
        account="A-9", lines=[("Visit", "10.00", "standard")])))
    assert "There is no account A-9." in unknown
    inexact = _page(staff.post("/admin/billing/invoice/one-off/", _one_off_form(
        lines=[("Visit", "10.005", "standard")])))
    assert "items[0].amount: 10.005 has more decimals than EUR" in inexact
    nameless = _page(staff.post("/admin/billing/invoice/one-off/",
                                _one_off_form(lines=[("", "10.00", "standard")])))
    assert "A charge needs a name." in nameless
    empty = _page(staff.post("/admin/billing/invoice/one-off/", _one_off_form()))
    assert "needs at least one charge" in empty
    assert not Invoice.objects.exists()


def _act(staff, action, *invoices):
    selection = {"action": action, "_selected_action": [row.pk for row in invoices]}
    return _page(staff.post("/admin/billing/invoice/", selection, follow=True))


def test_the_list_actions_move_invoices_and_name_the_ones_that_cannot(staff, rates, system):
    first, second = _draft(system), _draft(system, amount="50.00")
    page = _act(staff, "accept_selected", first, second)
    assert {i.state for i in Invoice.objects.all()} == {"accepted"}
    assert f"Accepted: {first}, {second}" in page
    with clock.frozen(date(2026, 11, 20)):
        page = _act(staff, "issue_selected", first, second)
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.number, second.number) == ("INV/2026/000001", "INV/2026/000002")
    assert first.issue_date == date(2026, 11, 20) and "Issued: INV/2026/000001, INV/2026/000002" in page

    page = _act(staff, "cancel_selected", first)
    assert "Invoice INV/2026/000001 is issued; cannot cancel it" in page  # the admin capitalises messages
    page = _act(staff, "send_selected", first)
    assert "account A-1 has no billing contact" in page and "INV/2026/000001" in page
    first.refresh_from_db()
    assert first.state == "issued"

    third = _draft(system)
    with clock.frozen(date(2026, 11, 21)):
        page = _act(staff, "credit_note_selected", first, third)
    note = Invoice.objects.get(kind="credit_note")
    assert (note.state, note.credited, note.gross) == ("draft", first, D("-119.00"))
    assert f"Credited: INV/2026/000001 → {note}" in page
    assert f"Invoice {third} is draft: only an issued invoice is credited" in page
    page = _act(staff, "cancel_selected", third)
    third.refresh_from_db()
    assert third.state == "cancelled" and f"Cancelled: {third}" in page


def test_the_buttons_of_the_invoice_page(staff, rates, system):
    draft = _draft(system)
    url = f"/admin/billing/invoice/{draft.pk}/"
    page = _page(staff.get(f"{url}change/"))
    assert f'formaction="{url}step/accept/"' in page and f'formaction="{url}step/cancel/"' in page
    assert "step/issue/" not in page and "step/credit_note/" not in page

    assert staff.get(f"{url}step/accept/").status_code == 405  # a step is a POST
    refused = staff.post(f"{url}step/issue/", follow=True)
    assert f"Invoice {draft} is draft; cannot issue it" in _page(refused)
    staff.post(f"{url}step/accept/")
    with clock.frozen(date(2026, 11, 20)):
        response = staff.post(f"{url}step/issue/")
    assert response.status_code == 302 and response["Location"] == f"{url}change/"
    draft.refresh_from_db()
    assert (draft.state, draft.number) == ("issued", "INV/2026/000001")
    page = _page(staff.get(f"{url}change/"))
    assert "step/send/" in page and "step/credit_note/" in page and "step/accept/" not in page

    response = staff.post(f"{url}step/credit_note/")
    note = Invoice.objects.get(kind="credit_note")
    assert response["Location"] == f"/admin/billing/invoice/{note.pk}/change/"
    assert staff.post(f"{url}step/nothing/").status_code == 404


def test_read_only_staff_see_invoices_but_take_no_step(client, tenant, rates, system):
    user = get_user_model().objects.create_user("victor", password="x", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=Role.READONLY)
    client.force_login(user)
    draft = _draft(system)
    listing = _page(client.get("/admin/billing/invoice/"))
    assert "one-off/" not in listing and "accept_selected" not in listing
    assert "step/accept/" not in _page(client.get(f"/admin/billing/invoice/{draft.pk}/change/"))
    assert client.get("/admin/billing/invoice/one-off/").status_code == 403
    assert client.post(f"/admin/billing/invoice/{draft.pk}/step/accept/").status_code == 403
    client.post("/admin/billing/invoice/", {"action": "accept_selected", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.state == "draft"


def test_an_e_invoice_that_breaks_a_rule_is_refused_on_the_invoice_page(staff, invoice, system):  # noqa: F811
    invoice = billing.issue(system, billing.accept(system, invoice))  # the tenant has no VAT identifier
    for kind in ("facturx", "ubl"):
        response = staff.get(f"/admin/billing/invoice/{invoice.pk}/{kind}/", follow=True)
        assert response.redirect_chain[-1][0] == f"/admin/billing/invoice/{invoice.pk}/change/"
        text = " ".join(str(message) for message in response.context["messages"])
        assert "BR-S-02" in text and "Tenant.vat_id" in text
