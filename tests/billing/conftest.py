"""Fixtures of the billing tests."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing.models import TaxRate


@pytest.fixture
def vat(in_tenant):
    """German standard VAT (19%) since 2020, in the tenant's scope."""
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("19"), valid_from=date(2020, 1, 1))


# A complete seller identity (EN 16931 BG-4), as an operator fills it in on the tenant.
SELLER = {"legal_name": "Acme Telecom GmbH", "vat_id": "DE136695976", "registration_id": "HRB 12345 Berlin",
          "street": "Friedrichstraße 10", "postcode": "10117", "city": "Berlin", "email": "billing@acme.example",
          "iban": "DE89370400440532013000"}


@pytest.fixture
def seller(in_tenant):
    """The tenant with its seller identity filled in, so its e-invoices keep the EN 16931 rules."""
    for name, value in SELLER.items():
        setattr(in_tenant, name, value)
    in_tenant.full_clean()
    in_tenant.save()
    return in_tenant
