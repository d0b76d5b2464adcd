"""Tenants, staff and the audit trail."""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from obol.core import clock
from obol.core.fields import UnitField
from obol.core.roles import Role
from obol.core.rounding import RoundingRule
from obol.core.tenancy import TenantOwned


class Tenant(models.Model):
    """An operator using Obol. Owns everything else."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    timezone = models.CharField(max_length=64, default="UTC")
    default_currency = UnitField(money_only=True, default="EUR")
    default_language = models.CharField(max_length=8, default="en")
    rounding = models.CharField(max_length=12, choices=RoundingRule.choices, default=RoundingRule.HALF_UP)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"{self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)"},
                                  code="invalid_timezone") from None
        self.country = (self.country or "").upper()


class StaffProfile(models.Model):
    """A staff user's tenant and role."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="staff")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.READONLY)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()} at {self.tenant.code})"


class AuditEvent(TenantOwned):
    """Who did what to which object, when and why. Rows are never changed or deleted."""

    class ActorKind(models.TextChoices):
        USER = "user", "Staff user"
        API_KEY = "api_key", "API key"
        PROCESS = "process", "Process"

    at = models.DateTimeField(default=clock.now, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "object_type", "object_id", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label}: {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("audit events are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("audit events are immutable")


class Counter(TenantOwned):
    """A per-tenant sequence (customer numbers now; gapless invoice numbers later)."""

    series = models.CharField(max_length=60)
    last_value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "series"], name="counter_series_per_tenant")]

    def __str__(self) -> str:
        return f"{self.series}: {self.last_value}"
