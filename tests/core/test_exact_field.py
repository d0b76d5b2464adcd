"""The one amount field stores amounts exactly on SQLite and PostgreSQL."""
from decimal import Decimal

import pytest
from django.db import transaction

from obol.core.errors import ValidationFailed
from obol.core.fields import numeric_order
from obol.core.validation import full_clean
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


@pytest.mark.parametrize(
    ("value", "reason"),
    [("0.0000000000000000001", "more than 18 decimals"),
     ("100000000000000000000", "more than 20 integer digits"),
     ("100000000000000000000000000000000000000000000000000.000000000000000001", "more than 20 integer digits")],
)
def test_what_cannot_be_stored_exactly_is_refused_not_rounded(customer, value, reason):
    account = BillingAccount(number="A-1", customer=customer, currency="ETH", credit_limit=Decimal(value))
    with pytest.raises(ValidationFailed, match=reason):
        full_clean(account)
    with pytest.raises(ValidationFailed, match=reason), transaction.atomic():
        account.save()
    assert not BillingAccount.objects.exists()


def test_trailing_zeros_and_exponent_forms_are_the_same_amount(customer):
    for number, value in [("A-1", "1E+2"), ("A-2", "100.000000000000000000000"), ("A-3", "-0")]:
        BillingAccount.objects.create(number=number, customer=customer, currency="EUR", credit_limit=Decimal(value))
    assert BillingAccount.objects.get(number="A-1").credit_limit == 100
    assert BillingAccount.objects.get(number="A-2").credit_limit == 100
    assert BillingAccount.objects.get(number="A-3").credit_limit == 0
    assert BillingAccount.objects.filter(credit_limit=Decimal("100")).count() == 2


def test_filters_compare_amounts_as_numbers(customer):
    for number, limit in [("A-1", "9.5"), ("A-2", "10"), ("A-3", "100.25"), ("A-4", "-3")]:
        BillingAccount.objects.create(number=number, customer=customer, currency="EUR", credit_limit=Decimal(limit))
    numbers = lambda qs: sorted(qs.values_list("number", flat=True))  # noqa: E731
    assert numbers(BillingAccount.objects.filter(credit_limit__gt=Decimal("9.75"))) == ["A-2", "A-3"]
    assert numbers(BillingAccount.objects.filter(credit_limit__lte=Decimal("10"))) == ["A-1", "A-2", "A-4"]
    assert numbers(BillingAccount.objects.filter(credit_limit=Decimal("10.00"))) == ["A-2"]
    assert numbers(BillingAccount.objects.filter(credit_limit__lt=0)) == ["A-4"]
    assert numbers(BillingAccount.objects.filter(credit_limit__range=(Decimal(5), Decimal(50)))) == ["A-1", "A-2"]
    assert numbers(BillingAccount.objects.filter(credit_limit__in=[Decimal("9.50"), Decimal("-3")])) == ["A-1", "A-4"]
    by_value = BillingAccount.objects.order_by(numeric_order("credit_limit"))
    assert list(by_value.values_list("number", flat=True)) == ["A-4", "A-1", "A-2", "A-3"]
