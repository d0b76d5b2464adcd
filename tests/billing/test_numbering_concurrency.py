"""8 issuers at once on PostgreSQL: 400 accepted invoices get the numbers 1..400 of the series, none
twice, none missing (billing.services.issue locks the series' counter until its transaction ends)."""
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection

from obol.billing import journal
from obol.billing import services as billing
from obol.billing.models import Invoice, InvoiceLine, InvoiceTax, JournalEntry
from obol.core.tenancy import tenant_context
from tests.factories import make_account
from tests.support.race import race

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")]


def test_eight_parallel_issuers_number_400_invoices_without_a_gap(tenant, system):
    with tenant_context(tenant):
        account = make_account()
        invoices = Invoice.objects.bulk_create([
            Invoice(tenant=tenant, account=account, state=Invoice.State.ACCEPTED, invoice_date=date(2026, 11, 1),
                    currency="EUR", net=D("10.00"), gross=D("11.90"), tax=D("1.90")) for _ in range(400)])
        InvoiceLine.objects.bulk_create([
            InvoiceLine(tenant=tenant, invoice=invoice, position=1, charge_code="fee", kind="one_time", name="Fee",
                        amount=D("10.00"), service_start=date(2026, 11, 1), service_end=date(2026, 11, 2),
                        tax_rate=D("19")) for invoice in invoices])
        InvoiceTax.objects.bulk_create([InvoiceTax(tenant=tenant, invoice=invoice, code="S", rate=D("19"),
                                                   taxable=D("10.00"), tax=D("1.90")) for invoice in invoices])
    shares = [invoices[n::8] for n in range(8)]

    def issuer(share):
        return lambda: [billing.issue(system, invoice, date(2026, 11, 26)).number for invoice in share]

    results = race(tenant, [issuer(share) for share in shares])
    numbers = sorted(number for result in results for number in result)
    assert numbers == [f"INV/2026/{n:06d}" for n in range(1, 401)]
    with tenant_context(tenant):
        assert Invoice.objects.filter(state=Invoice.State.ISSUED).count() == 400
        assert journal.unbalanced() == [] and JournalEntry.objects.count() == 400
