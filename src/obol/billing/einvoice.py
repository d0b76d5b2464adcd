"""E-invoices of issued invoices and credit notes, EN 16931, through the factur-x library:
- `cii_xml`: UN/CEFACT CII (Factur-X profile EN 16931), validated against the schema;
- `ubl_xml`: UBL 2.1 (Invoice, or CreditNote for a credit note), validated against the schema;
- `facturx_pdf`: the stored PDF of the invoice with the CII XML embedded (Factur-X, PDF/A-3).

The fields: number (BT-1), issue date (BT-2), type 380 invoice / 381 credit note (BT-3), currency
(BT-5), due date (BT-9), the preceding invoice of a credit note (BG-3), seller (the tenant) and
buyer (the customer, with its address and VAT number when known), the invoicing period (BT-73/74:
the service days of the lines) and the billing day (BT-72), the VAT breakdown per category
(BG-23) and the lines (BG-25: quantity 1, or -1 for a credit line, so that the net price stays
positive as EN 16931 asks; the service period as the line period). A credit note states its
amounts as positive numbers: its type (381) says they are owed back.
"""
from __future__ import annotations

from decimal import Decimal

from obol.billing import documents, tax
from obol.billing.models import Invoice
from obol.core.errors import ValidationFailed
from obol.core.money import digits
from obol.core.tenancy import current_tenant

LEVEL = "en16931"


def data(invoice: Invoice) -> dict:
    """The invoice as factur-x's EN 16931 data (business terms as keys)."""
    if invoice.state not in documents.ISSUED:
        raise ValidationFailed(f"invoice {invoice}: only an issued invoice has an e-invoice", field="state")
    tenant, customer, currency = current_tenant(), invoice.account.customer, invoice.currency
    # a credit note states its amounts as positive: type 381 says they are owed back
    flip = Decimal(-1) if invoice.kind == Invoice.Kind.CREDIT_NOTE else Decimal(1)
    address = customer.addresses.first()
    buyer = {"name": customer.name, "country_code": (address.country if address else customer.country)
             or tenant.country}
    if address is not None:
        buyer.update(addr_l1=address.line1, city=address.city, postcode=address.postal_code)
    if customer.tax_id:
        buyer["vat_identifier"] = customer.tax_id
    rows = list(invoice.lines.order_by("position"))
    nets = [line.amount for line in rows]
    if invoice.prices_include_tax:  # EN 16931 lines are net: each VAT row's net spread over its lines
        totals = tax.Totals(tuple(tax.TaxSubtotal(r.code, r.rate, r.taxable, r.tax) for r in invoice.taxes.all()))
        nets = tax.line_nets([(line.amount, line.tax_code, line.tax_rate) for line in rows], totals, currency,
                             tenant.rounding)
    lines = []
    for line, net in zip(rows, nets, strict=True):
        amount = net * flip
        item = {"BT-126": str(line.position), "BT-129": "-1" if amount < 0 else "1", "BT-130": "C62",
                "BT-131": digits(amount, currency), "BT-146": digits(abs(amount), currency),
                "BT-151": line.tax_code, "BT-152": f"{line.tax_rate:f}",
                "BT-153": line.name + (f" ({line.label})" if line.label else ""),
                "BT-134": line.service_start, "BT-135": documents.last_day(line)}
        lines.append(item)
    doc = {
        "BT-1": invoice.number, "BT-2": invoice.issue_date,
        "BT-3": "381" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "380",
        "BT-5": currency, "BT-9": invoice.due_date,
        # the invoicing period: from the first to the last day of service the lines cover
        "BT-73": min(item["BT-134"] for item in lines) if lines else invoice.invoice_date,
        "BT-74": max(item["BT-135"] for item in lines) if lines else invoice.invoice_date,
        "BT-72": invoice.invoice_date,  # the day the charges were worked out for
        "BG-4": {"name": tenant.name, "country_code": tenant.country or buyer["country_code"]},
        "BG-7": buyer,
        "BG-23": [{"BT-116": digits(row.taxable * flip, currency), "BT-117": digits(row.tax * flip, currency),
                   "BT-118": row.code, "BT-119": f"{row.rate:f}"} for row in invoice.taxes.all()],
        "BG-25": lines,
        "BT-106": digits(sum(nets, Decimal(0)) * flip, currency),
        "BT-109": digits(invoice.net * flip, currency), "BT-110": digits(invoice.tax * flip, currency),
        "BT-112": digits(invoice.gross * flip, currency), "BT-115": digits(invoice.gross * flip, currency),
    }
    if invoice.credited_id:
        doc["BG-3"] = [{"BT-25": invoice.credited.number, "BT-26": invoice.credited.issue_date}]
    return doc


def cii_xml(invoice: Invoice) -> bytes:
    from facturx import generate_xml
    return generate_xml(data(invoice), flavor="factur-x", level=LEVEL, check_xsd=True)


def ubl_xml(invoice: Invoice) -> bytes:
    from facturx import generate_xml
    return generate_xml(data(invoice), flavor="ubl-2.1", level=LEVEL, check_xsd=True)


def facturx_pdf(invoice: Invoice) -> bytes:
    """The stored PDF with its CII XML attached: one file a person reads and a machine books."""
    from facturx import generate_from_binary
    return generate_from_binary(documents.pdf_of(invoice), cii_xml(invoice), flavor="factur-x", level=LEVEL,
                                check_xsd=True, lang=documents.language_of(invoice) or None)
