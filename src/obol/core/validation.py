"""Model validation that speaks Obol's error type (code, message, field)."""
from __future__ import annotations

from django.core.exceptions import ValidationError

from obol.core.errors import ValidationFailed


def full_clean(obj, **kwargs) -> None:
    """Run Django's model validation; the first problem becomes a ValidationFailed naming its field."""
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            field, errors = next(iter(exc.error_dict.items()))
            field = None if field == "__all__" else field
            message = "; ".join(m for e in errors for m in e.messages)
        else:
            field, message = None, "; ".join(exc.messages)
        raise ValidationFailed(f"{field}: {message}" if field else message, field=field) from None
