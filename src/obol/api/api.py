"""The REST API under /api/v1: one NinjaAPI, key authentication, one JSON error shape
`{"error": {"code", "message", "field"}}`, and each app's router."""
from __future__ import annotations

import json
from decimal import Decimal

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from obol.api.auth import BearerKey, HeaderKey
from obol.api.rendering import ObolJSONRenderer
from obol.core.errors import ObolError


class ExactJSONParser(Parser):
    """JSON numbers with a fraction become Decimal, never float, so 18-decimal amounts stay exact."""

    def parse_body(self, request):
        return json.loads(request.body, parse_float=Decimal)


DESCRIPTION = """
Obol's REST API. Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`
(create keys with `obol apikey create`). Amounts are decimal strings. Errors are
`{"error": {"code": ..., "message": ..., "field": ...}}` with a stable `code`. POST requests
honour an `Idempotency-Key` header: a repeat with the same key returns the first answer and
changes nothing.
"""

api = NinjaAPI(
    title="Obol API",
    version="1",
    description=DESCRIPTION,
    auth=[BearerKey(), HeaderKey()],
    parser=ExactJSONParser(),
    renderer=ObolJSONRenderer(),
    urls_namespace="api-v1",
)


def error_response(request, status: int, code: str, message: str, field: str | None = None):
    return api.create_response(request, {"error": {"code": code, "message": message, "field": field}},
                               status=status)


@api.exception_handler(ObolError)
def obol_error(request, exc: ObolError):
    return error_response(request, exc.status, exc.code, exc.message, exc.field)


@api.exception_handler(NinjaValidationError)
def invalid_request(request, exc: NinjaValidationError):
    first = exc.errors[0] if exc.errors else {}
    loc = [p for p in first.get("loc", ()) if p not in ("body", "payload", "query", "path", "filters")]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    message = first.get("msg", "invalid request")
    return error_response(request, 422, "invalid_request", f"{field}: {message}" if field else message, field)


@api.exception_handler(AuthenticationError)
def unauthorized(request, exc):
    return error_response(request, 401, "unauthorized", "a valid API key is required (Authorization: Bearer ...)")


@api.exception_handler(Http404)
def not_found(request, exc):
    return error_response(request, 404, "not_found", str(exc) or "not found")


_HTTP_CODES = {400: "bad_request", 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    return error_response(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc))


def _register_routers() -> None:
    from obol.balances.api import router as balances_router
    from obol.billing.api import router as billing_router
    from obol.catalog.api import router as catalog_router
    from obol.charging.api import router as charging_router
    from obol.customers.api import router as customers_router
    from obol.subscriptions.api import router as subscriptions_router
    from obol.usage.api import router as usage_router

    api.add_router("/", customers_router)
    api.add_router("/", catalog_router)
    api.add_router("/", subscriptions_router)
    api.add_router("/", balances_router)
    api.add_router("/", usage_router)
    api.add_router("/", charging_router)
    api.add_router("/", billing_router)


_register_routers()
