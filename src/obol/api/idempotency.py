"""`Idempotency-Key` on POST: the first answer is stored with the request's fingerprint; a repeat
with the same key and body gets that answer again and changes nothing; the same key with another
body is refused. The work and the record commit together, so a crash leaves neither."""
from __future__ import annotations

import hashlib
from functools import wraps

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from ninja.responses import Status

from obol.api.models import IdempotencyRecord
from obol.core.errors import Conflict, ValidationFailed
from obol.core.tenancy import current_tenant

HEADER = "Idempotency-Key"


def _fingerprint(request) -> str:
    return hashlib.sha256(b"\n".join([request.method.encode(), request.path.encode(), request.body])).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str):
    if record.request_hash != fingerprint:
        raise Conflict(f"{HEADER} {record.key!r} was already used for a different request",
                       field=HEADER, code="idempotency_key_reused")
    return JsonResponse(record.response, status=record.status_code, safe=False)


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
            record = IdempotencyRecord.objects.filter(key=key).first()
            if record is not None:
                return _replay(record, fingerprint)
            try:
                with transaction.atomic():
                    body = schema.from_orm(func(request, *args, **kwargs)).model_dump(mode="json")
                    IdempotencyRecord.objects.create(
                        tenant=current_tenant(), key=key, method=request.method, path=request.path,
                        request_hash=fingerprint, status_code=status, response=body,
                    )
            except IntegrityError:
                # A concurrent request with the same key committed first: ours was rolled back whole.
                record = IdempotencyRecord.objects.filter(key=key).first()
                if record is None:
                    raise
                return _replay(record, fingerprint)
            return JsonResponse(body, status=status, safe=False)

        return wrapper

    return decorate
