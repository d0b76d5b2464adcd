"""Invoice documents: HTML from the tenant's template (or the built-in one), PDF by WeasyPrint.

- The template in force is the tenant's highest version for the invoice's language (the account's,
  else the tenant's), else its highest version for every language (""), else the built-in one in
  `document_defaults/`. Staff change it in the admin; each change is a new version.
- Templates use Django's template language on a bare engine (no file loaders, autoescaped). The
  context: `invoice`, `lines` (each with `amount_text`, `tax_rate_text`, `last_day`), `taxes`
  (each with `rate_text`, `taxable_text`, `tax_text`), `net`, `gross`, `account`, `customer`,
  `address`, `tenant`, `title`, `language`.
- Nothing is fetched from the network: WeasyPrint may only read `data:` URLs, so a template that
  names a remote stylesheet or image is rendered without it.
- Issuing records the template version in force (`Invoice.template`). The PDF of an issued invoice
  is rendered with that version the first time it is asked for, and stored with its SHA-256
  (`InvoiceDocument`): asking again returns the same bytes, whatever the template has become since.
  A draft is rendered each time with the template in force and not stored (a preview).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.template import Context, Engine

from obol.billing.models import Invoice, InvoiceDocument, InvoiceTemplate
from obol.core.money import digits
from obol.core.tenancy import current_tenant

DEFAULTS = Path(__file__).resolve().parent / "document_defaults"
_ENGINE = Engine(autoescape=True, libraries={}, builtins=["django.template.defaultfilters",
                                                          "django.template.defaulttags"])
ISSUED = {Invoice.State.ISSUED, Invoice.State.SENT}


@dataclass(frozen=True)
class Template:
    html: str
    css: str
    version: int  # 0: built-in


def builtin() -> Template:
    return Template((DEFAULTS / "invoice.html").read_text(encoding="utf-8"),
                    (DEFAULTS / "invoice.css").read_text(encoding="utf-8"), 0)


def language_of(invoice: Invoice) -> str:
    return invoice.account.language or current_tenant().default_language or ""


def template_row(language: str) -> InvoiceTemplate | None:
    """The tenant's template in force for `language` (None: the built-in one)."""
    for wanted in ([language, ""] if language else [""]):
        found = InvoiceTemplate.objects.filter(language=wanted).order_by("-version").first()
        if found is not None:
            return found
    return None


def _template(row: InvoiceTemplate | None) -> Template:
    return builtin() if row is None else Template(row.html, row.css, row.version)


def template_for(language: str) -> Template:
    return _template(template_row(language))


def last_day(line) -> date:
    """The last day of a line's service (its end is excluded)."""
    return line.service_end - timedelta(days=1)


def context(invoice: Invoice, language: str) -> dict:
    currency = invoice.currency
    lines = list(invoice.lines.order_by("position"))
    for line in lines:
        line.amount_text = digits(line.amount, currency)
        line.tax_rate_text = f"{line.tax_rate.normalize():f}"
        line.last_day = last_day(line)
    taxes = list(invoice.taxes.all())
    for row in taxes:
        row.rate_text = f"{row.rate.normalize():f}"
        row.taxable_text, row.tax_text = digits(row.taxable, currency), digits(row.tax, currency)
    customer = invoice.account.customer
    return {
        "invoice": invoice, "lines": lines, "taxes": taxes, "account": invoice.account, "customer": customer,
        "address": customer.addresses.first(),
        "tenant": current_tenant(), "net": digits(invoice.net, currency), "gross": digits(invoice.gross, currency),
        "title": "Credit note" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "Invoice", "language": language,
    }


def render_html(invoice: Invoice, template: Template | None = None) -> str:
    language = language_of(invoice)
    template = template or template_for(language)
    html = _ENGINE.from_string(template.html).render(Context(context(invoice, language)))
    return html.replace("</head>", f"<style>{template.css}</style></head>", 1) if template.css else html


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML  # imported on use: it loads Pango
    from weasyprint.urls import URLFetcher
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf()


def pdf_of(invoice: Invoice) -> bytes:
    """The invoice's PDF: stored for an issued invoice (rendered and stored the first time), a
    fresh preview for a draft."""
    if invoice.state not in ISSUED:
        return render_pdf(render_html(invoice))
    stored = InvoiceDocument.objects.filter(invoice=invoice).first()
    if stored is not None:
        return bytes(stored.pdf)
    template = _template(invoice.template)  # the one in force when it was issued: versions never change
    pdf = render_pdf(render_html(invoice, template))
    try:
        with transaction.atomic():
            InvoiceDocument.objects.create(invoice=invoice, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest(),
                                           template_version=template.version)
    except IntegrityError:  # rendered at the same time elsewhere: that one is the document
        return bytes(InvoiceDocument.objects.get(invoice=invoice).pdf)
    return pdf
