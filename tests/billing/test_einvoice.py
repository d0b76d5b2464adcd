"""E-invoices (billing/einvoice.py): the Factur-X CII and the UBL 2.1 of an issued invoice and of a
credit note validate against their schemas and carry the figures of the invoice; the Factur-X PDF
is the stored PDF with the XML inside."""
from datetime import date

import pytest
from facturx import get_facturx_xml_from_pdf, xml_check_xsd
from lxml import etree

from obol.billing import einvoice
from obol.billing import services as billing
from obol.core.errors import ValidationFailed
from tests.billing.test_documents import invoice, text  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}


def value(xml: bytes, path: str) -> str:
    return etree.fromstring(xml).xpath(path, namespaces=NS)[0].text


def test_the_cii_of_an_issued_invoice_validates_and_says_what_the_invoice_says(invoice, system):  # noqa: F811
    with pytest.raises(ValidationFailed, match="only an issued invoice"):
        einvoice.cii_xml(invoice)
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    xml = einvoice.cii_xml(invoice)
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert value(xml, "//rsm:ExchangedDocument/ram:ID") == "INV/2026/000001"
    assert value(xml, "//rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert value(xml, "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount") == "17.85"
    assert value(xml, "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CalculatedAmount") == "2.85"
    pdf = einvoice.facturx_pdf(invoice)
    name, embedded = get_facturx_xml_from_pdf(pdf)
    assert name == "factur-x.xml" and embedded == xml
    assert "INV/2026/000001" in text(pdf)


def test_a_credit_note_is_type_381_and_names_the_invoice_it_corrects(invoice, system):  # noqa: F811
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    note = billing.issue(system, billing.accept(system, billing.credit_note(system, invoice)), date(2026, 11, 20))
    xml = einvoice.cii_xml(note)
    assert xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert value(xml, "//rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert value(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == "INV/2026/000001"
    # positive: the type says the amount is owed back
    assert value(xml, "//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:GrandTotalAmount") == "17.85"
    ubl = einvoice.ubl_xml(note)
    assert xml_check_xsd(ubl, flavor="ubl-2.1")
    assert etree.fromstring(ubl).tag.endswith("CreditNote")
    assert value(ubl, "//cbc:PayableAmount") == "17.85"
