"""API keys (stored hashed) and the idempotency records that make a repeated POST harmless."""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.roles import Role
from obol.core.tenancy import TenantOwned


class ApiKey(TenantOwned):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part of the key, shown in logs")
    key_hash = models.CharField(max_length=64, help_text="SHA-256 of the whole key; the key itself is never stored")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.CLERK)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"


class IdempotencyRecord(TenantOwned):
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_key_per_tenant")]
