"""Tax identifiers checked with python-stdnum for the customer's country."""
from __future__ import annotations

from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

from obol.core.errors import ValidationFailed

# Modules tried in order for a country: VAT numbers first (what invoices carry), then tax ids.
_KINDS = ("vat", "tin", "tva", "nif", "cif")


def normalise_tax_id(country: str, tax_id: str) -> str:
    """The compact, validated form of `tax_id` for `country`; unchanged when stdnum has no module
    for the country. A wrong number raises ValidationFailed on the `tax_id` field."""
    tax_id = (tax_id or "").strip()
    if not tax_id or not country:
        return tax_id
    if country.lower() in eu_vat.MEMBER_STATES:
        return _normalise_eu_vat(country.upper(), tax_id)
    modules = [m for kind in _KINDS if (m := get_cc_module(country.lower(), kind)) is not None]
    if not modules:
        return tax_id
    reasons = []
    for module in modules:
        try:
            return module.validate(tax_id)
        except StdnumError as exc:
            reasons.append(f"{module.__name__.rsplit('.', 1)[-1]}: {exc}")
    raise ValidationFailed(
        f"tax_id {tax_id!r} is not a valid tax number for {country.upper()} ({'; '.join(reasons)})",
        field="tax_id",
        code="invalid_tax_id",
    )


def _normalise_eu_vat(country: str, tax_id: str) -> str:
    """EU VAT numbers keep their country prefix (DE136695976), as invoices print them."""
    prefix = "EL" if country == "GR" else country
    number = eu_vat.compact(tax_id)
    if not number[:2].isalpha():
        number = prefix + number
    try:
        return eu_vat.validate(number)
    except StdnumError as exc:
        raise ValidationFailed(
            f"tax_id {tax_id!r} is not a valid VAT number for {country} ({exc})", field="tax_id", code="invalid_tax_id"
        ) from None
