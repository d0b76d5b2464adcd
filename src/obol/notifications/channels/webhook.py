"""Alerts by webhook: a JSON POST signed with the tenant's secret.

The body is {id, tenant, kind, severity, subject, message, details, created_at}; the header
`X-Obol-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>` lets the receiver
check it came from Obol. Any answer other than 2xx, a timeout (5 s) or a connection error fails.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from obol.notifications.channels import DeliveryFailed

TIMEOUT_SECONDS = 5.0


def payload(alert) -> bytes:
    document = {
        "id": alert.pk,
        "tenant": alert.tenant.code,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "message": alert.message,
        "details": alert.details,
        "created_at": alert.created_at.isoformat(),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(alert, delivery, secret: str) -> None:
    import httpx  # imported here: until httpx is a runtime dependency, a missing one fails the delivery only

    body = payload(alert)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Obol-Alerts/1",
        "X-Obol-Signature": signature(secret, body),
        "X-Obol-Delivery": str(delivery.pk),
    }
    try:
        response = httpx.post(delivery.target, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
