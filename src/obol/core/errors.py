"""The one error family of Obol. Every refusal names a stable code, a message and, where it
applies, the offending field; the API turns these into JSON, the CLI into a message and exit code."""
from __future__ import annotations


class ObolError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationFailed(ObolError):
    code = "invalid"
    status = 422


class UnitMismatch(ValidationFailed):
    code = "unit_mismatch"


class NotFound(ObolError):
    code = "not_found"
    status = 404


class Forbidden(ObolError):
    code = "forbidden"
    status = 403


class Conflict(ObolError):
    code = "conflict"
    status = 409


class IllegalTransition(Conflict):
    code = "illegal_transition"


class TenantNotSet(RuntimeError):
    """A tenant-owned table was read or written with no tenant in scope: a programming error."""
