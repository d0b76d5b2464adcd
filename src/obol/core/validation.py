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
            code = errors[0].code
            unique = [f for f in (errors[0].params or {}).get("unique_check", ()) if f != "tenant"]
            if field is None and unique:
                field, code = unique[0], "invalid_duplicate"
                message = f"{obj._meta.verbose_name} with this {' and '.join(unique)} already exists"
        else:
            field, message, code = None, "; ".join(exc.messages), None
        code = code if code and code.startswith("invalid_") and code != "invalid_value" else None
        raise ValidationFailed(f"{field}: {message}" if field else message, field=field, code=code) from None


def as_django_error(error: ValidationFailed) -> ValidationError:
    """For model.clean(): the same problem as Django's error, keyed by field, code kept."""
    message = error.message.removeprefix(f"{error.field}: ") if error.field else error.message
    # Django forms replace the message of an error coded like the field's own ("invalid" becomes
    # "Enter a number."), so a generic code is sent under a name of ours.
    code = "invalid_value" if error.code == "invalid" else error.code
    django_error = ValidationError(message, code=code)
    return ValidationError({error.field: django_error}) if error.field else django_error
