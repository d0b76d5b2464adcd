"""E-invoices (billing/einvoice.py): the Factur-X CII and the UBL 2.1 of an issued invoice and of a
credit note validate against their schemas, keep the official EN 16931 business rules and carry the
figures of the invoice and the seller's identity from the tenant; the Factur-X PDF is the stored PDF
with the XML inside."""
from datetime import date

import pytest
from facturx import get_facturx_xml_from_pdf, xml_check_xsd
from lxml import etree

from obol.billing import einvoice
from obol.billing import services as billing
from obol.core.errors import ValidationFailed
from tests.billing.conftest import SELLER
from tests.billing.test_documents import invoice, text  # noqa: F401 - the fixture
from tests.support.en16931 import official_failures

pytestmark = pytest.mark.django_db
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}


def value(xml: bytes, path: str) -> str:
    return etree.fromstring(xml).xpath(path, namespaces=NS)[0].text


def test_the_cii_of_an_issued_invoice_validates_and_says_what_the_invoice_says(invoice, seller, system):  # noqa: F811
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


def test_a_credit_note_is_type_381_and_names_the_invoice_it_corrects(invoice, seller, system):  # noqa: F811
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
    # a UBL credit note has no document due date: the payment means and terms carry it
    assert value(ubl, "//cac:PaymentMeans/cbc:PaymentDueDate") == note.due_date.isoformat()
    assert official_failures(xml) == [] and official_failures(ubl) == []


def test_the_sellers_identity_from_the_tenant_is_in_both_documents(invoice, seller, system):  # noqa: F811
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    cii, ubl = einvoice.cii_xml(invoice), einvoice.ubl_xml(invoice)
    party = "//ram:SellerTradeParty/"
    assert [value(cii, party + path) for path in (
        "ram:Name", "ram:SpecifiedLegalOrganization/ram:ID", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName",
        "ram:PostalTradeAddress/ram:LineOne", "ram:PostalTradeAddress/ram:PostcodeCode",
        "ram:PostalTradeAddress/ram:CityName", "ram:PostalTradeAddress/ram:CountryID",
        "ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']", "ram:URIUniversalCommunication/ram:URIID[@schemeID='EM']",
    )] == ["Acme Telecom GmbH", "HRB 12345 Berlin", "Acme Telecom", "Friedrichstraße 10", "10117", "Berlin", "DE",
           "DE136695976", "billing@acme.example"]
    means = "//ram:SpecifiedTradeSettlementPaymentMeans/"
    assert (value(cii, means + "ram:TypeCode"), value(cii, means + "ram:PayeePartyCreditorFinancialAccount/ram:IBANID"),
            value(cii, "//ram:PaymentReference")) == ("58", SELLER["iban"], "INV/2026/000001")
    assert value(cii, "//ram:BuyerReference") == "A-1"

    party = "//cac:AccountingSupplierParty/cac:Party/"
    assert [value(ubl, party + path) for path in (
        "cac:PartyLegalEntity/cbc:RegistrationName", "cac:PartyLegalEntity/cbc:CompanyID", "cac:PartyName/cbc:Name",
        "cac:PostalAddress/cbc:StreetName", "cac:PostalAddress/cbc:PostalZone", "cac:PostalAddress/cbc:CityName",
        "cac:PostalAddress/cac:Country/cbc:IdentificationCode",
        "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='VAT']/cbc:CompanyID", "cbc:EndpointID[@schemeID='EM']",
    )] == ["Acme Telecom GmbH", "HRB 12345 Berlin", "Acme Telecom", "Friedrichstraße 10", "10117", "Berlin", "DE",
           "DE136695976", "billing@acme.example"]
    assert (value(ubl, "//cac:PaymentMeans/cbc:PaymentMeansCode"),
            value(ubl, "//cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID")) == ("58", SELLER["iban"])
    # both parties have an electronic address: the UBL says it is PEPPOL BIS Billing 3.0
    assert value(ubl, "//cbc:CustomizationID") == einvoice.PEPPOL_CUSTOMIZATION
    assert value(ubl, "//cbc:ProfileID") == einvoice.PEPPOL_PROFILE
    assert value(ubl, "//cac:AccountingCustomerParty/cac:Party/cbc:EndpointID") == "ada@example.test"
    assert value(ubl, "//cbc:DueDate") == "2026-11-30" and value(ubl, "//cbc:BuyerReference") == "A-1"

    for xml in (cii, ubl):
        assert xml_check_xsd(xml, flavor="autodetect", level="en16931")
        assert einvoice.rule_findings(xml) == [] and official_failures(xml) == []


def test_without_an_iban_or_an_email_there_are_no_payment_means_and_the_ubl_is_plain_en16931(
        invoice, seller, system):  # noqa: F811
    seller.iban = seller.email = ""
    seller.save()
    invoice = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    cii, ubl = einvoice.cii_xml(invoice), einvoice.ubl_xml(invoice)
    assert not etree.fromstring(cii).xpath("//ram:SpecifiedTradeSettlementPaymentMeans", namespaces=NS)
    assert not etree.fromstring(ubl).xpath("//cac:PaymentMeans | //cac:AccountingSupplierParty//cbc:EndpointID",
                                           namespaces=NS)
    assert value(ubl, "//cbc:CustomizationID") == "urn:cen.eu:en16931:2017"
    assert value(cii, "//ram:SpecifiedTradePaymentTerms/ram:Description") == "Due date 2026-11-30"
    assert official_failures(cii) == [] and official_failures(ubl) == []
