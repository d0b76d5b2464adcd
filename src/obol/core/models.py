"""Tenants, staff and the audit trail."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from stdnum import iban as iban_number
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as StdnumError

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
    # The seller on the tenant's invoices (EN 16931 BG-4); billing/einvoice.py says which e-invoice
    # rule needs which of them.
    legal_name = models.CharField(max_length=200, blank=True,
                                  help_text="Registered name, e.g. 'Acme Telecom GmbH' (EN 16931 BT-27); "
                                            "empty: the name")
    vat_id = models.CharField("VAT identifier", max_length=20, blank=True,
                              help_text="With its country prefix, e.g. DE136695976 (BT-31)")
    registration_id = models.CharField("company registration id", max_length=60, blank=True,
                                       help_text="Trade register number, e.g. HRB 12345 Berlin (BT-30)")
    street = models.CharField(max_length=200, blank=True, help_text="Street and number (BT-35)")
    postcode = models.CharField(max_length=20, blank=True, help_text="BT-38")
    city = models.CharField(max_length=100, blank=True, help_text="BT-37")
    email = models.EmailField("contact e-mail", blank=True,
                              help_text="Where customers write about invoices; the seller's electronic address "
                                        "in e-invoices (BT-34, BT-43)")
    iban = models.CharField("IBAN", max_length=34, blank=True,
                            help_text="The account customers pay into, printed as payment instructions (BT-84)")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = ValidationError(f"{self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)",
                                                 code="invalid_timezone")
        self.country = (self.country or "").strip().upper()
        if self.country and not re.fullmatch(r"[A-Z]{2}", self.country):
            errors["country"] = ValidationError(f"country {self.country!r} is not an ISO 3166-1 alpha-2 code (e.g. DE)",
                                                code="invalid_country")
        for name, check in (("vat_id", check_vat_id), ("iban", check_iban)):
            try:
                setattr(self, name, check(getattr(self, name)))
            except ValidationError as error:
                errors[name] = error
        if errors:
            raise ValidationError(errors)

    @property
    def seller_name(self) -> str:
        """The seller's name on invoices (BT-27): the registered name, else the name."""
        return self.legal_name or self.name


def check_vat_id(value: str) -> str:
    """A VAT identifier in its compact form (DE 136 695 976 -> DE136695976). It must start with its
    country's two letters (EN 16931 BR-CO-09; Greece uses EL); an EU member state's number must also
    pass that state's check digits."""
    value = re.sub(r"[\s.\-/]", "", value or "").upper()
    if not value:
        return ""
    if not re.fullmatch(r"[A-Z]{2}[0-9A-Z+*]{2,13}", value):
        raise ValidationError(f"VAT identifier {value!r} must start with its 2-letter country prefix "
                              "followed by the number (e.g. DE136695976)", code="invalid_vat_id")
    if value[:2].lower() in eu_vat.MEMBER_STATES or value[:2] == "EL":
        try:
            value = eu_vat.validate(value)
        except StdnumError as exc:
            raise ValidationError(f"VAT identifier {value!r} is not a valid {value[:2]} VAT number "
                                  f"({str(exc).rstrip('.').lower()})",
                                  code="invalid_vat_id") from None
    return value


def check_iban(value: str) -> str:
    """An IBAN in its compact form, checked with the ISO 13616 mod-97 check digits (and the
    country's length)."""
    value = iban_number.compact(value or "")
    if not value:
        return ""
    try:
        return iban_number.validate(value)
    except StdnumError as exc:
        raise ValidationError(f"IBAN {value!r} is not valid (ISO 13616: {str(exc).rstrip('.').lower()})",
                              code="invalid_iban") from None


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
