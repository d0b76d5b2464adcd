"""Pieces shared by every router's schemas."""

from datetime import date, datetime
from decimal import Decimal

from ninja import Schema


class ErrorBody(Schema):
    code: str
    message: str
    field: str | None = None


class Error(Schema):
    error: ErrorBody


class AuditEventOut(Schema):
    at: datetime
    actor_kind: str
    actor_label: str
    action: str
    changes: dict
    reason: str


ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 409: Error, 422: Error}

__all__ = ["ERRORS", "AuditEventOut", "Decimal", "Error", "date", "datetime"]
