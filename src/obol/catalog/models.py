"""What is sold: products, services, price plans and their versioned, effective-dated charges.

A plan's priced content (charges, tiers, allowances) lives in a `PricePlanVersion`; a change to
the content makes a new version effective from a date, and versions already in force are never
rewritten. "Which charges apply on day D" is `PricePlan.version_at(D)`.
"""
from __future__ import annotations

from datetime import date

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantOwned


class Period(models.TextChoices):
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"
    YEAR = "year", "Year"


class Product(TenantOwned):
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tax_category = models.CharField(max_length=40, default="standard")
    revenue_account = models.CharField(max_length=20, blank=True,
                                       help_text="Ledger account of its revenue; empty: the tenant's default")

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="product_code_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Service(TenantOwned):
    """A usage service: what usage records and allowances are counted against."""

    class Kind(models.TextChoices):
        VOICE = "voice", "Voice"
        SMS = "sms", "SMS"
        DATA = "data", "Data"
        VIDEO = "video", "Video"
        EVENT = "event", "Generic event"

    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    unit = UnitField(help_text="The unit usage of this service is measured in (second, sms, byte, play, event)")

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="service_code_per_tenant")]

    def __str__(self) -> str:
        return self.name


class PricePlan(TenantOwned):
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = UnitField(money_only=True)
    reseller = models.ForeignKey(
        "customers.Reseller", null=True, blank=True, on_delete=models.PROTECT, related_name="plans",
        help_text="Sold only by this reseller (empty: sold by the tenant)",
    )
    active = models.BooleanField(default=True, help_text="Open for new subscriptions")

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="plan_code_per_tenant")]

    def __str__(self) -> str:
        return self.name

    def version_at(self, day: date) -> PricePlanVersion | None:
        return self.versions.filter(effective_from__lte=day).order_by("-effective_from").first()

    def latest_version(self) -> PricePlanVersion | None:
        return self.versions.order_by("-effective_from").first()


class PricePlanVersion(TenantOwned):
    plan = models.ForeignKey(PricePlan, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    effective_from = models.DateField()
    bill_during_suspension = models.BooleanField(
        default=False, help_text="Recurring charges keep running while a subscription is suspended"
    )
    content_hash = models.CharField(max_length=64, help_text="Fingerprint of the priced content, for idempotent loads")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["plan", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="plan_version_number"),
            models.UniqueConstraint(fields=["plan", "effective_from"], name="plan_version_effective_from"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} v{self.number} (from {self.effective_from})"

    def is_in_force(self, today: date | None = None) -> bool:
        return self.effective_from <= (today or clock.today())


class Charge(TenantOwned):
    class Kind(models.TextChoices):
        RECURRING = "recurring", "Recurring"
        ONE_TIME = "one_time", "One-time"
        QUANTITY = "quantity", "Quantity-based"
        USAGE = "usage", "Usage-based"

    class Billing(models.TextChoices):
        ADVANCE = "advance", "In advance"
        ARREARS = "arrears", "In arrears"

    class Event(models.TextChoices):
        ACTIVATION = "activation", "Activation"
        TERMINATION = "termination", "Termination"

    class Model(models.TextChoices):
        PER_UNIT = "per_unit", "Per unit"
        GRADUATED = "graduated", "Graduated tiers"
        VOLUME = "volume", "Volume tiers"
        PACKAGE = "package", "Package"

    version = models.ForeignKey(PricePlanVersion, on_delete=models.CASCADE, related_name="charges")
    position = models.PositiveSmallIntegerField(default=0)
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    price = ExactDecimalField(null=True, blank=True, help_text="Recurring/one-time price; per-unit or per-package price")
    period = models.CharField(max_length=8, choices=Period.choices, blank=True)
    billing = models.CharField(max_length=8, choices=Billing.choices, blank=True)
    prorate = models.BooleanField(default=False)
    event = models.CharField(max_length=12, choices=Event.choices, blank=True)
    model = models.CharField(max_length=10, choices=Model.choices, blank=True)
    package_size = ExactDecimalField(null=True, blank=True)
    rate_table = models.CharField(max_length=60, blank=True, help_text="Rate table code (usage charges)")
    tax_category = models.CharField(max_length=40, default="standard")

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "code"], name="charge_code_per_version")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class ChargeTier(TenantOwned):
    """One tier of a graduated or volume quantity charge: units up to `up_to` (empty: no end)."""

    charge = models.ForeignKey(Charge, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(default=0)
    up_to = ExactDecimalField(null=True, blank=True)
    unit_price = ExactDecimalField()
    flat_fee = ExactDecimalField(default=0)

    class Meta:
        ordering = ["charge", "position"]

    def __str__(self) -> str:
        return f"up to {self.up_to if self.up_to is not None else '∞'}: {self.unit_price}"


class Allowance(TenantOwned):
    """Units included in a plan per period (e.g. 300 voice minutes a month, 10 GB of data)."""

    version = models.ForeignKey(PricePlanVersion, on_delete=models.CASCADE, related_name="allowances")
    position = models.PositiveSmallIntegerField(default=0)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    amount = ExactDecimalField()
    unit = UnitField()
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    prorate = models.BooleanField(default=False, help_text="Grant a prorated part for a partial period")
    rollover_cap = ExactDecimalField(
        null=True, blank=True,
        help_text="In the allowance's unit: at most this much of a period's unused allowance rolls over "
                  "into the next period (empty: nothing rolls over)",
    )

    class Meta:
        ordering = ["version", "position"]

    def __str__(self) -> str:
        return f"{self.amount} {self.unit} of {self.service.code} per {self.period}"


from obol.catalog.rate_models import *  # noqa
