"""The one amount field stores amounts exactly on SQLite and PostgreSQL."""
from decimal import Decimal

import pytest

from obol.customers.models import BillingAccount, Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(in_tenant):
    return Customer.objects.create(number="C-1", name="Ada")


@pytest.mark.parametrize(
    "value",
    [
        "0.000000000000000001",
        "123456789.123456789012345678",
        "-0.5",
        "10.005",
        "0",
        "99999999999999999999.999999999999999999",
    ],
)
def test_amounts_survive_a_save_and_load_exactly(customer, value):
    account = BillingAccount.objects.create(number="A-1", customer=customer, currency="ETH", credit_limit=Decimal(value))
    loaded = BillingAccount.objects.get(pk=account.pk)
    assert loaded.credit_limit == Decimal(value)


def test_more_than_eighteen_decimals_are_refused(customer):
    with pytest.raises(ValueError, match="more than 18 decimals"):
        BillingAccount.objects.create(
            number="A-1", customer=customer, currency="ETH", credit_limit=Decimal("0.0000000000000000001")
        )


def test_filters_compare_amounts_as_numbers(customer):
    for number, limit in [("A-1", "9.5"), ("A-2", "10"), ("A-3", "100.25"), ("A-4", "-3")]:
        BillingAccount.objects.create(number=number, customer=customer, currency="EUR", credit_limit=Decimal(limit))
    numbers = lambda qs: sorted(qs.values_list("number", flat=True))  # noqa: E731
    assert numbers(BillingAccount.objects.filter(credit_limit__gt=Decimal("9.75"))) == ["A-2", "A-3"]
    assert numbers(BillingAccount.objects.filter(credit_limit__lte=Decimal("10"))) == ["A-1", "A-2", "A-4"]
    assert numbers(BillingAccount.objects.filter(credit_limit=Decimal("10.00"))) == ["A-2"]
    assert numbers(BillingAccount.objects.filter(credit_limit__lt=0)) == ["A-4"]
