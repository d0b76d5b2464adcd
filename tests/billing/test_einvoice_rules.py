"""EN 16931 business rules of the e-invoices (billing/einvoice.py): an export that would break one is
refused, naming the rule and the field to fill in; the rules are read from the XML itself, so a
changed document fails them. Each case is checked against the official rules too (CEN schematron,
tests/support/en16931.py), so that ours say what a receiving platform would say.

The invoice of these tests (tests/billing/test_documents.py): 30.00/month from 16 November, 15 of
30 days -> one line of 15.00, standard rated (S) at 19% -> VAT 2.85, total 17.85.
"""
from datetime import date
from decimal import Decimal as D

import pytest
from facturx import generate_xml
from lxml import etree

from obol.billing import einvoice
from obol.billing import services as billing
from tests.billing.test_documents import invoice  # noqa: F401 - the fixture
from tests.support.en16931 import official_failures

pytestmark = pytest.mark.django_db
NS = einvoice.NS


@pytest.fixture
def issued(invoice, system):  # noqa: F811
    return billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))


def unchecked(invoice, flavor):  # noqa: F811
    """The XML as it would be without the rules check (for comparing with the official rules)."""
    return generate_xml(einvoice.data(invoice), flavor=flavor, level="en16931", check_xsd=False, check_schematron=False)


def rules(findings) -> list[str]:
    return [finding.rule for finding in findings]


def test_a_standard_rated_invoice_of_a_tenant_without_vat_id_is_refused_naming_the_field(seller, system, invoice):  # noqa: F811
    seller.vat_id = ""
    seller.save()
    issued = billing.issue(system, billing.accept(system, invoice), date(2026, 11, 16))
    for export in (einvoice.cii_xml, einvoice.ubl_xml, einvoice.facturx_pdf):
        with pytest.raises(einvoice.RulesBroken) as refused:
            export(issued)
        assert refused.value.field == "tenant.vat_id" and refused.value.code == "einvoice_rules"
        assert rules(refused.value.findings) == ["BR-S-02"]  # the registration id still identifies the seller
        assert "BR-S-02: " in refused.value.message and "fill in the tenant's VAT identifier (Tenant.vat_id)" \
            in refused.value.message
    for flavor in ("factur-x", "ubl-2.1"):
        assert [rule for rule, _ in official_failures(unchecked(issued, flavor))] == ["BR-S-02"]


def test_a_tenant_without_address_or_identifier_gets_every_rule_it_breaks(in_tenant, issued):
    # the conftest tenant: name and country only, no seller identity filled in
    with pytest.raises(einvoice.RulesBroken) as refused:
        einvoice.ubl_xml(issued)
    assert rules(refused.value.findings) == ["BR-08", "BR-CO-26", "BR-S-02"]
    assert refused.value.field == "tenant.street"
    assert ("BR-08: the seller's postal address (BG-5) needs street, postcode and city: fill in the tenant's street "
            "(Tenant.street), the tenant's postcode (Tenant.postcode), the tenant's city (Tenant.city)"
            ) in refused.value.message
    assert {rule for rule, _ in official_failures(unchecked(issued, "ubl-2.1"))} == {"BR-CO-26", "BR-S-02"}
    in_tenant.country = ""
    in_tenant.save()
    issued.refresh_from_db()
    findings = einvoice.rule_findings(unchecked(issued, "factur-x"))
    # the customer has no address and no country either: the buyer's address took the tenant's
    assert rules(findings) == ["BR-08", "BR-09", "BR-10", "BR-CO-26", "BR-S-02"]
    assert str(findings[1]) == "BR-09: the seller's country code (BT-40) is missing: fill in the tenant's country " \
                               "(Tenant.country)"


def changed(xml: bytes, path: str, text: str) -> bytes:
    root = etree.fromstring(xml)
    node = root.xpath(path, namespaces=NS)[0]
    node.text = text
    return etree.tostring(root)


def test_a_line_amount_changed_in_the_xml_breaks_br_co_10(seller, issued):
    cii = changed(einvoice.cii_xml(issued), "//ram:IncludedSupplyChainTradeLineItem//ram:LineTotalAmount", "16.00")
    ubl = changed(einvoice.ubl_xml(issued), "//cac:InvoiceLine/cbc:LineExtensionAmount", "16.00")
    for xml in (cii, ubl):
        # the line says 16.00; the line total (BT-106) and the 19% VAT row's base (BT-116) still say 15.00
        assert [str(f) for f in einvoice.rule_findings(xml)] == [
            "BR-CO-10: BT-106 is 15.00 but the sum of the line net amounts (BT-131) is 16.00",
            "BR-S-08: VAT category S at 19%: taxable amount (BT-116) is 15.00 but its lines (BT-131) and "
            "allowances/charges sum to 16.00",
        ]
        assert sorted(rule for rule, _ in official_failures(xml)) == ["BR-CO-10", "BR-S-08"]
        with pytest.raises(einvoice.RulesBroken, match="BR-CO-10"):
            einvoice.require_rules(xml, "the changed document")


def test_a_vat_amount_changed_in_the_xml_breaks_br_s_09_and_br_co_14(seller, issued):
    cii = changed(einvoice.cii_xml(issued), "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/"
                                            "ram:CalculatedAmount", "2.86")
    ubl = changed(einvoice.ubl_xml(issued), "//cac:TaxSubtotal/cbc:TaxAmount", "2.86")
    for xml in (cii, ubl):
        # 15.00 x 19% = 2.85 exactly (and from the gross: 17.86 x 19/119 = 2.8516); BT-110 still says 2.85
        assert [str(f) for f in einvoice.rule_findings(xml)] == [
            "BR-CO-14: BT-110 is 2.85 but the sum of the VAT category amounts (BT-117) is 2.86",
            "BR-S-09: VAT category S at 19%: VAT amount (BT-117) is 2.86 but 15.00 x 19% is 2.85",
        ]
        # the official BR-S-09 lets the VAT be up to 1.00 off; ours is exact
        assert [rule for rule, _ in official_failures(xml)] == ["BR-CO-14"]


def test_totals_changed_in_the_xml_break_br_co_13_and_br_co_15(seller, issued):
    ubl = changed(einvoice.ubl_xml(issued), "//cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount", "14.00")
    # BT-109 14.00, but BT-106 15.00 - 0 + 0 = 15.00; and 14.00 + 2.85 = 16.85, not the 17.85 of BT-112
    assert [str(f) for f in einvoice.rule_findings(ubl)] == [
        "BR-CO-13: BT-109 is 14.00 but BT-106 - BT-107 + BT-108 is 15.00",
        "BR-CO-15: BT-112 is 17.85 but BT-109 + BT-110 is 16.85",
    ]
    assert sorted(rule for rule, _ in official_failures(ubl)) == ["BR-CO-13", "BR-CO-15"]


def test_an_amount_due_needs_a_due_date_or_payment_terms(seller, issued):
    cii = etree.fromstring(einvoice.cii_xml(issued))
    terms = cii.xpath("//ram:SpecifiedTradePaymentTerms", namespaces=NS)[0]
    terms.getparent().remove(terms)
    assert [str(f) for f in einvoice.rule_findings(etree.tostring(cii))] == [
        "BR-CO-25: an amount is due (BT-115) but there is neither a due date (BT-9) nor payment terms (BT-20)"]


def test_a_document_without_lines_or_number_breaks_br_16_and_br_02(seller, issued):
    root = etree.fromstring(einvoice.ubl_xml(issued))
    for node in root.xpath("cbc:ID | cac:InvoiceLine", namespaces=NS):
        root.remove(node)
    assert rules(einvoice.rule_findings(etree.tostring(root)))[:2] == ["BR-02", "BR-16"]


@pytest.mark.parametrize(("vat", "taxable", "rate", "decimals", "fits"), [
    ("6.91", "30.03", "23", 2, True),  # 6.9069
    ("6.90", "30.03", "23", 2, False),  # the VAT of three lines rounded each, not the row's
    ("0.10", "0.50", "19", 2, True),  # 0.095, a half: up ...
    ("0.09", "0.50", "19", 2, True),  # ... or even
    ("1.60", "8.45", "19", 2, True),  # price 10.05 including 19%: 10.05 x 19/119 = 1.6046, though 8.45 x 19% = 1.6055
    ("1.59", "8.45", "19", 2, False),  # neither 1.6055 nor, from the gross, 10.04 x 19/119 = 1.6030
    ("100", "1001", "10", 0, True),  # JPY has no minor unit: 100.1
    ("101", "1001", "10", 0, False),
])
def test_the_vat_of_a_rate_is_the_taxable_amount_times_the_rate_rounded_once(vat, taxable, rate, decimals, fits):
    assert einvoice.vat_fits(D(vat), D(taxable), D(rate), decimals) is fits
