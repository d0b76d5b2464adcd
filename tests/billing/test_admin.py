"""Billing in the back office: a template change is a new version, previewed as a PDF on the
tenant's latest invoice; an invoice's PDF opens from its list."""
import io

import pytest
from django.contrib.auth import get_user_model
from pypdf import PdfReader

from obol.billing import services as billing
from obol.billing.models import InvoiceTemplate
from obol.core.models import StaffProfile
from obol.core.roles import Role
from tests.billing.test_documents import invoice  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, tenant):
    user = get_user_model().objects.create_user("anna", password="x", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=Role.ADMIN)
    client.force_login(user)
    return client


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


def test_an_invoice_pdf_opens_from_the_admin(staff, invoice, system):  # noqa: F811
    invoice = billing.issue(system, billing.accept(system, invoice))
    page = staff.get("/admin/billing/invoice/").content.decode()
    assert f"/admin/billing/invoice/{invoice.pk}/pdf/" in page
    assert invoice.number in pdf_text(staff.get(f"/admin/billing/invoice/{invoice.pk}/pdf/"))
    assert invoice.number in pdf_text(staff.get(f"/admin/billing/invoice/{invoice.pk}/facturx/"))
    ubl = staff.get(f"/admin/billing/invoice/{invoice.pk}/ubl/")
    assert ubl["Content-Type"] == "application/xml" and invoice.number.encode() in ubl.content
