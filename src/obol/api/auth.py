"""API keys: `obol_<prefix>_<secret>`, stored as a SHA-256 hash (keys are long random strings, so a
plain hash is enough). A valid key scopes the request to its tenant and names the actor."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from ninja.security import APIKeyHeader, HttpBearer

from obol.api.models import ApiKey
from obol.core import audit, clock, tenancy
from obol.core.actors import Actor
from obol.core.roles import Role


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def create_api_key(actor: Actor, name: str, role: str = Role.CLERK, key: str | None = None) -> tuple[ApiKey, str]:
    """Create a key for the tenant in scope; returns the row and the key, which is shown only once.
    `key` fixes the key instead of drawing a random one (the demo tenant's documented key)."""
    actor.require_write()
    prefix = key.split("_")[1] if key else secrets.token_hex(4)
    key = key or f"obol_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey.objects.create(tenant=tenancy.current_tenant(), name=name, prefix=prefix,
                                key_hash=_hash(key), role=Role(role))
    audit.record(actor, "apikey.create", row, {"name": name, "role": role, "prefix": prefix})
    return row, key


def authenticate_key(key: str) -> ApiKey | None:
    try:
        _, prefix, _ = key.split("_", 2)
    except ValueError:
        return None
    with tenancy.all_tenants():
        row = ApiKey.objects.select_related("tenant").filter(prefix=prefix, revoked_at__isnull=True).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return row


def _accept(request, key: str):
    row = authenticate_key(key)
    if row is None:
        return None
    tenancy.activate(row.tenant)
    request.actor = Actor.for_api_key(row)
    request.api_key = row
    now = clock.now()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


class BearerKey(HttpBearer):
    """`Authorization: Bearer obol_...`"""

    def authenticate(self, request, token):
        return _accept(request, token)


class HeaderKey(APIKeyHeader):
    """`X-API-Key: obol_...`"""

    param_name = "X-API-Key"

    def authenticate(self, request, key):
        return _accept(request, key) if key else None
