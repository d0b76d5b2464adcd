"""Quantity charge models (billing/charge_models.py), table-driven, amounts by hand."""
from decimal import Decimal as D

import pytest

from obol.billing.charge_models import Tier, price_quantity
from obol.core.errors import ValidationFailed

TIERS = (Tier(D("10"), D("1.00")), Tier(D("50"), D("0.80"), D("5.00")), Tier(None, D("0.50")))


@pytest.mark.parametrize(("model", "quantity", "amount"), [
    ("per_unit", D("7"), D("17.43")),  # 7 x 2.49
    ("per_unit", D("0"), D("0")),
    ("graduated", D("0"), D("0")),
    ("graduated", D("10"), D("10.00")),  # 10 x 1.00
    ("graduated", D("11"), D("15.80")),  # 10 x 1.00 + 1 x 0.80 + 5.00 (the second tier is reached)
    ("graduated", D("60"), D("52.00")),  # 10 x 1.00 + 40 x 0.80 + 5.00 + 10 x 0.50
    ("volume", D("0"), D("0")),
    ("volume", D("10"), D("10.00")),  # every unit at the first tier
    ("volume", D("11"), D("13.80")),  # 11 x 0.80 + 5.00
    ("volume", D("60"), D("30.00")),  # 60 x 0.50
    ("package", D("25"), D("22.47")),  # 3 started packages of 10 x 7.49
    ("package", D("30"), D("22.47")),
    ("package", D("0"), D("0")),
])
def test_models(model, quantity, amount):
    priced = price_quantity(model, quantity, price=D("2.49") if model == "per_unit" else D("7.49"), tiers=TIERS,
                            package_size=D("10"))
    assert priced.amount == amount


def test_graduated_details_explain_each_tier():
    assert price_quantity("graduated", D("60"), tiers=TIERS).details == (
        "10 x 1.00", "40 x 0.80 + 5.00", "10 x 0.50")


@pytest.mark.parametrize(("model", "kwargs", "field"), [
    ("flat", {"price": D("1")}, "model"),
    ("graduated", {}, "tiers"),
    ("per_unit", {}, "price"),
    ("package", {"price": D("1")}, "package_size"),
])
def test_an_incomplete_charge_is_refused_naming_the_field(model, kwargs, field):
    with pytest.raises(ValidationFailed) as refused:
        price_quantity(model, D("1"), **kwargs)
    assert refused.value.field == field
