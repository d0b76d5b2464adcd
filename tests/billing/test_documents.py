"""Invoice documents (billing/documents.py) and sending (billing.services.send): the PDF opens and
says the number and the total; an issued invoice's PDF is kept byte for byte; the tenant's template
wins over the built-in one; the mail reaches a real SMTP server with the PDF attached."""
import hashlib
import io
from datetime import date
from decimal import Decimal as D

import pytest
from pypdf import PdfReader

from obol.billing import documents
from obol.billing import services as billing
from obol.billing.models import InvoiceDocument, InvoiceTemplate, TaxRate
from obol.core.audit import history
from obol.customers.models import Contact
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def text(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def invoice(in_tenant, system):
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("19"),
                           valid_from=date(2020, 1, 1))
    account = make_account()
    contact = Contact.objects.create(tenant=in_tenant, customer=account.customer, name="Ada Lovelace",
                                     email="ada@example.test")
    account.billing_contact = contact
    account.save()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 16))
    return billing.generate(system, account, date(2026, 11, 16))


def test_the_pdf_of_an_issued_invoice_says_its_number_and_total_and_is_kept(invoice, system):
    draft = text(documents.pdf_of(invoice))
    assert "Invoice (draft)" in draft and "17.85" in draft
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    pdf = documents.pdf_of(invoice)
    words = text(pdf)
    assert "INV/2026/000001" in words and "17.85" in words and "2026-11-30" in words  # number, total, due date
    assert "Basic" in words and "2026-11-16 – 2026-11-30" in words and "15.00" in words and "2.85" in words
    stored = InvoiceDocument.objects.get(invoice=invoice)
    assert stored.sha256 == hashlib.sha256(pdf).hexdigest() and stored.template_version == 0
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=1, html="<p>Rechnung {{ invoice.number }}</p>")
    assert documents.pdf_of(invoice) == pdf  # issued: the same bytes, whatever the template is now


def test_the_tenants_template_in_force_is_its_latest_version_for_the_language(invoice, system):
    InvoiceTemplate.objects.create(tenant=invoice.tenant, language="de", version=1,
                                   html="<p>Rechnung alt {{ gross }}</p>")
    InvoiceTemplate.objects.create(tenant=invoice.tenant, language="de", version=2,
                                   html="<html><head></head><p>Rechnung {{ gross }} {{ invoice.currency }}</p></html>",
                                   css="p { color: #123456 }")
    InvoiceTemplate.objects.create(tenant=invoice.tenant, language="", version=1, html="<p>Invoice {{ gross }}</p>")
    invoice.account.language = "de"
    invoice.account.save()
    assert text(documents.pdf_of(invoice)).strip() == "Rechnung 17.85 EUR"
    invoice.account.language = "fr"
    invoice.account.save()
    assert text(documents.pdf_of(invoice)).strip() == "Invoice 17.85"


def test_a_template_naming_something_on_the_network_renders_without_it(invoice):
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=1, html=(
        '<html><head><link rel="stylesheet" href="https://cdn.example.com/x.css"></head>'
        '<body><img src="http://example.com/logo.png"><p>Total {{ gross }}</p></body></html>'))
    assert "Total 17.85" in text(documents.pdf_of(invoice))


def test_sending_mails_the_pdf_to_the_billing_contact(invoice, system, mail_to_smtp, django_capture_on_commit_callbacks):
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    with django_capture_on_commit_callbacks(execute=True):
        sent = billing.send(system, invoice)
    assert sent.state == "sent"
    [mail] = mail_to_smtp.messages
    assert mail["to"] == ["ada@example.test"] and "INV/2026/000001" in mail["message"]["Subject"]
    [attachment] = list(mail["message"].iter_attachments())
    assert attachment.get_filename() == "INV-2026-000001.pdf"
    assert attachment.get_content() == bytes(InvoiceDocument.objects.get(invoice=invoice).pdf)
    assert "17.85" in text(attachment.get_content())
    assert [e.action for e in history(invoice)][:1] == ["invoice.sent"]


def test_a_refused_mail_puts_the_invoice_back_to_issued(invoice, system, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    with django_capture_on_commit_callbacks(execute=True):
        billing.send(system, invoice)
    invoice.refresh_from_db()
    assert invoice.state == "issued"
    assert [e.action for e in history(invoice)][:2] == ["invoice.send_failed", "invoice.sent"]


def test_an_account_without_a_billing_contact_cannot_be_sent_to(invoice, system):
    invoice.account.billing_contact = None
    invoice.account.save()
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    with pytest.raises(Exception, match="account A-1 has no billing contact with an e-mail address"):
        billing.send(system, invoice)
    invoice.refresh_from_db()
    assert invoice.state == "issued"


def test_an_issued_invoice_is_rendered_with_the_template_in_force_when_it_was_issued(invoice, system):
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=1, html="<p>Old {{ invoice.number }}</p>")
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=2, html="<p>New {{ invoice.number }}</p>")
    invoice.refresh_from_db()
    assert text(documents.pdf_of(invoice)).strip() == "Old INV/2026/000001"  # first asked for after the change
    assert InvoiceDocument.objects.get(invoice=invoice).template_version == 1


def test_many_pdfs_are_rendered_by_worker_processes_and_stored_as_one_at_a_time(invoice, system):
    """store_pdfs: each issued invoice without a PDF gets the document pdf_of would have made (the
    template in force at its issue, its SHA-256); a draft and an invoice already stored are left alone."""
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=1,
                                   html="<p>Old {{ invoice.number }} {{ gross }}</p>")
    first = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    InvoiceTemplate.objects.create(tenant=invoice.tenant, version=2,
                                   html="<p>New {{ invoice.number }} {{ gross }}</p>")
    plan = make_plan("plus", price="60.00")
    issued, drafts = [], []
    for n in range(2, 6):
        account = make_account(f"A-{n}")
        subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 16))
        draft = billing.generate(system, account, date(2026, 11, 16))
        if n == 5:
            drafts.append(draft)
        else:
            issued.append(billing.issue(system, billing.accept(system, draft), date(2026, 11, 16)))
    kept = documents.pdf_of(issued[0])  # already stored: not rendered again
    assert documents.store_pdfs([first, *issued, *drafts], workers=2) == 3
    assert documents.store_pdfs([first, *issued, *drafts], workers=2) == 0
    assert not InvoiceDocument.objects.filter(invoice__in=drafts).exists()
    assert bytes(InvoiceDocument.objects.get(invoice=issued[0]).pdf) == kept
    stored = {d.invoice_id: d for d in InvoiceDocument.objects.all()}
    assert text(bytes(stored[first.pk].pdf)).strip() == "Old INV/2026/000001 17.85"
    assert stored[first.pk].template_version == 1
    for number, invoice in enumerate(issued, start=2):
        pdf = bytes(stored[invoice.pk].pdf)
        assert text(pdf).strip() == f"New INV/2026/00000{number} 35.70" and stored[invoice.pk].template_version == 2
        assert stored[invoice.pk].sha256 == hashlib.sha256(pdf).hexdigest()
        assert documents.pdf_of(invoice) == pdf


def test_the_built_in_template_gives_the_same_pdf_in_a_worker_as_rendered_alone(invoice, system):
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    alone = documents.render_pdf(documents.render_html(invoice, documents.builtin()))  # fonts loaded for it alone
    assert documents.store_pdfs([invoice.pk], workers=2) == 1
    stored = InvoiceDocument.objects.get(invoice=invoice)
    assert bytes(stored.pdf) == alone and stored.template_version == 0
    words = text(alone)
    assert "INV/2026/000001" in words and "17.85" in words and "Page 1 of 1" in words
