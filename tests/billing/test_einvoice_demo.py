"""The demo tenant has a seller identity: its issued invoices export as e-invoices that keep the
EN 16931 rules, ours and the official ones."""
import pytest

from obol.billing import einvoice
from obol.billing.models import Invoice
from obol.core.models import Tenant
from obol.core.tenancy import tenant_context
from obol.demo.loader import TENANT_CODE, load_demo
from tests.support.en16931 import official_failures

pytestmark = pytest.mark.django_db


def test_the_demo_tenants_invoices_export_as_e_invoices():
    load_demo()
    tenant = Tenant.objects.get(code=TENANT_CODE)
    assert (tenant.vat_id, tenant.city) == ("DE136695976", "Berlin")
    with tenant_context(tenant):
        invoice = Invoice.objects.filter(state__in=["issued", "sent"], account__customer__addresses__isnull=False) \
            .order_by("number").first()
        assert invoice is not None
        for xml in (einvoice.cii_xml(invoice), einvoice.ubl_xml(invoice)):
            assert einvoice.rule_findings(xml) == [] and official_failures(xml) == []
