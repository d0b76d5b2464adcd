"""Subscriptions: an account's use of a price plan over time.

The timeline of `SubscriptionChange` rows is the truth: each row, in order of effective date,
activates, suspends, resumes, terminates, or changes the plan or the quantity. The fields on
`Subscription` (status, plan, quantity, end_date) are the state after the last change, kept
for search; `state_at(day)` answers for any day (billing reads the timeline itself).
"""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField
from obol.core.tenancy import TenantOwned


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    TERMINATED = "terminated", "Terminated"


class Subscription(TenantOwned):
    number = models.CharField(max_length=40)
    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey("catalog.PricePlan", on_delete=models.PROTECT, related_name="subscriptions")
    quantity = ExactDecimalField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="Termination date, once terminated")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="subscription_number_per_tenant")]
        indexes = [models.Index(fields=["tenant", "status"])]

    def __str__(self) -> str:
        return f"{self.number} ({self.plan.code})"


class SubscriptionChange(TenantOwned):
    class Kind(models.TextChoices):
        CREATE = "create", "Created (pending)"
        ACTIVATE = "activate", "Activated"
        SUSPEND = "suspend", "Suspended"
        RESUME = "resume", "Resumed"
        TERMINATE = "terminate", "Terminated"
        CHANGE_PLAN = "change_plan", "Plan changed"
        CHANGE_QUANTITY = "change_quantity", "Quantity changed"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    effective_date = models.DateField()
    status = models.CharField(max_length=12, choices=Status.choices, help_text="Status from this date on")
    plan = models.ForeignKey("catalog.PricePlan", on_delete=models.PROTECT, related_name="+")
    quantity = ExactDecimalField()
    reason = models.TextField(blank=True)
    recorded_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["subscription", "seq"]
        constraints = [models.UniqueConstraint(fields=["subscription", "seq"], name="subscription_change_seq")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.effective_date}"


class UsageIdentifier(TenantOwned):
    """An identifier usage records carry (MSISDN, IMSI, username, external id), attached to a
    subscription for a validity period. At any instant a value belongs to at most one
    subscription of the tenant."""

    class Kind(models.TextChoices):
        MSISDN = "msisdn", "MSISDN"
        IMSI = "imsi", "IMSI"
        USERNAME = "username", "Username"
        EXTERNAL_ID = "external_id", "External id"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    value = models.CharField(max_length=120)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Exclusive end; empty: open")

    class Meta:
        ordering = ["kind", "value", "valid_from"]
        indexes = [models.Index(fields=["tenant", "kind", "value"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=models.F("valid_from")),
                name="identifier_validity_ordered",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"
