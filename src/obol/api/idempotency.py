"""`Idempotency-Key` on POST: the first answer is stored with the request's fingerprint; a repeat
with the same key and body gets that answer again and changes nothing; the same key with another
body, or from another API key, is refused. The key is claimed before the work starts, in the same
transaction as the work: a concurrent repeat waits for the first to finish and then gets its
answer, and a crash or an error leaves neither the work nor the key behind."""
from __future__ import annotations

import hashlib
from functools import wraps

from django.db import IntegrityError, transaction
from ninja.responses import Status

from obol.api.models import IdempotencyRecord
from obol.api.rendering import as_json_data, json_response
from obol.core.errors import Conflict, ValidationFailed
from obol.core.tenancy import current_tenant

HEADER = "Idempotency-Key"


def _fingerprint(request) -> str:
    caller = str(getattr(getattr(request, "api_key", None), "pk", "")).encode()
    return hashlib.sha256(b"\n".join([caller, request.method.encode(), request.path.encode(), request.body])).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str):
    if record.request_hash != fingerprint:
        raise Conflict(f"{HEADER} {record.key!r} was already used for a different request",
                       field=HEADER, code="idempotency_key_reused")
    return json_response(record.response, record.status_code)


def _claim(request, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Insert the key's record (waiting for a concurrent holder to finish); None if it exists."""
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                tenant=current_tenant(), key=key, method=request.method, path=request.path,
                request_hash=fingerprint, status_code=0, response={},
            )
    except IntegrityError:
        return None


def idempotent(schema, status: int = 201):
    """Decorate a POST operation that returns a model instance: the answer is `schema` of it."""

    def decorate(func):
        @wraps(func)
        def wrapper(request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return Status(status, func(request, *args, **kwargs))
            if not 1 <= len(key) <= 200:
                raise ValidationFailed(f"{HEADER} must be 1 to 200 characters", field=HEADER)
            fingerprint = _fingerprint(request)
            with transaction.atomic():
                record = _claim(request, key, fingerprint)
                if record is not None:
                    body = as_json_data(schema.from_orm(func(request, *args, **kwargs)).model_dump())
                    record.status_code, record.response = status, body
                    record.save(update_fields=["status_code", "response"])
                    return json_response(body, status)
            return _replay(IdempotencyRecord.objects.get(key=key), fingerprint)

        return wrapper

    return decorate
