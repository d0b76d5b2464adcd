"""Fixtures of the billing tests."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing.models import TaxRate


@pytest.fixture
def vat(in_tenant):
    """German standard VAT (19%) since 2020, in the tenant's scope."""
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("19"), valid_from=date(2020, 1, 1))
