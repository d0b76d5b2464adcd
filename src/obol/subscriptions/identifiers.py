"""Usage identifiers: normalisation per kind and the 'one owner at any instant' rule."""
from __future__ import annotations

import re

from obol.core.errors import ValidationFailed

_DIGITS = re.compile(r"\d+")


def normalise(kind: str, value: str) -> str:
    raw = (value or "").strip()
    if kind == "msisdn":
        digits = re.sub(r"[\s\-()]", "", raw)
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
        if not _DIGITS.fullmatch(digits) or not 6 <= len(digits) <= 15:
            raise ValidationFailed(f"value: {value!r} is not an MSISDN (E.164: up to 15 digits)", field="value")
        return digits
    if kind == "imsi":
        if not _DIGITS.fullmatch(raw) or not 14 <= len(raw) <= 15:
            raise ValidationFailed(f"value: {value!r} is not an IMSI (14 or 15 digits)", field="value")
        return raw
    if kind == "username":
        if not raw:
            raise ValidationFailed("value: a username cannot be empty", field="value")
        return raw.lower()
    if kind == "external_id":
        if not raw:
            raise ValidationFailed("value: an external id cannot be empty", field="value")
        return raw
    raise ValidationFailed(f"kind: {kind!r} is not an identifier kind (msisdn, imsi, username, external_id)",
                           field="kind")


def overlaps(a_from, a_to, b_from, b_to) -> bool:
    """Do two half-open validity periods [from, to) overlap? `None` as `to` means open-ended."""
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)
