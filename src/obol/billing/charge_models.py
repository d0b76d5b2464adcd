"""How a quantity is priced: the charge models of the catalog (per unit, graduated, volume,
package), pure. Each returns the amount for a whole period and the details that explain it, for
the invoice line and for support. No rounding here: the amount is exact, and the invoice line
rounds it once (`core/rounding.py`, INVOICE_LINE).

- per unit: quantity x price.
- graduated: each tier prices the units that fall in it (units 1-10 at the first tier's price,
  11-50 at the second, ...); every tier a unit reaches adds its flat fee.
- volume: the tier the whole quantity falls in prices every unit; only its flat fee applies (no
  units, nothing to pay).
- package: started packages of `package_size` units, each at `price` (25 units in packages of 10:
  3 packages).

A tier is `(up_to, unit_price, flat_fee)`; `up_to` None is the last, open tier; bounds include
their value (up to 10 means units 1-10).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from obol.core.errors import ValidationFailed
from obol.core.money import EXACT


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True)
class Priced:
    """The amount of a quantity for one whole period, and how it was reached (one line a part)."""

    amount: Decimal
    details: tuple[str, ...]


def per_unit(quantity: Decimal, *, price: Decimal, **_) -> Priced:
    amount = EXACT.multiply(quantity, price)
    return Priced(amount, (f"{quantity} x {price}",))


def graduated(quantity: Decimal, *, tiers: Sequence[Tier], **_) -> Priced:
    amount, details, lower = Decimal(0), [], Decimal(0)
    for tier in tiers:
        if quantity <= lower:  # no unit reaches this tier
            break
        top = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = top - lower
        amount = EXACT.add(amount, EXACT.add(EXACT.multiply(units, tier.unit_price), tier.flat_fee))
        details.append(f"{units} x {tier.unit_price}" + (f" + {tier.flat_fee}" if tier.flat_fee else ""))
        if tier.up_to is None or quantity <= tier.up_to:
            break
        lower = tier.up_to
    return Priced(amount, tuple(details))


def volume(quantity: Decimal, *, tiers: Sequence[Tier], **_) -> Priced:
    if quantity == 0:
        return Priced(Decimal(0), ("0 units",))
    tier = next((t for t in tiers if t.up_to is None or quantity <= t.up_to), tiers[-1])
    amount = EXACT.add(EXACT.multiply(quantity, tier.unit_price), tier.flat_fee)
    return Priced(amount, (f"{quantity} x {tier.unit_price}" + (f" + {tier.flat_fee}" if tier.flat_fee else ""),))


def package(quantity: Decimal, *, price: Decimal, package_size: Decimal, **_) -> Priced:
    packages = (quantity / package_size).to_integral_value(rounding=ROUND_CEILING)
    return Priced(EXACT.multiply(packages, price), (f"{packages} packages of {package_size} x {price}",))


MODELS: dict[str, Callable[..., Priced]] = {
    "per_unit": per_unit, "graduated": graduated, "volume": volume, "package": package,
}


def price_quantity(model: str, quantity: Decimal, *, price: Decimal | None = None, tiers: Sequence[Tier] = (),
                   package_size: Decimal | None = None) -> Priced:
    """The amount of `quantity` under the charge model `model` (the catalog's words)."""
    if model not in MODELS:
        raise ValidationFailed(f"model: {model!r} is not one of {', '.join(MODELS)}", field="model")
    if quantity < 0:
        raise ValidationFailed(f"quantity: {quantity} is negative", field="quantity")
    if model in ("graduated", "volume") and not tiers:
        raise ValidationFailed(f"tiers: a {model} charge needs tiers", field="tiers")
    if model in ("per_unit", "package") and price is None:
        raise ValidationFailed(f"price: a {model} charge needs a price", field="price")
    if model == "package" and not package_size:
        raise ValidationFailed("package_size: a package charge needs a package size above 0", field="package_size")
    return MODELS[model](quantity, price=price, tiers=tiers, package_size=package_size)
