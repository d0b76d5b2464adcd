"""Pockets (balances in one unit) and their immutable ledger.

A pocket's `balance` is a cache of the sum of its ledger entries, written in the same transaction
as each entry; `obol balances verify` proves the two agree. Time and data pockets count in their
dimension's base unit (seconds, bytes) so every conversion is exact; `display_unit` is the unit
they were granted in (minutes, megabytes), for people.
"""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantManager, TenantOwned, TenantQuerySet


class LedgerQuerySet(TenantQuerySet):
    """Ledger entries are written once: no bulk update or delete either."""

    def update(self, **kwargs):
        raise RuntimeError("ledger entries are immutable")

    def delete(self):
        raise RuntimeError("ledger entries are immutable")


class LedgerManager(TenantManager.from_queryset(LedgerQuerySet)):
    pass


class Source(models.TextChoices):
    TOPUP = "topup", "Top-up"
    ALLOWANCE = "allowance", "Plan allowance"
    PROMOTION = "promotion", "Promotion"
    VOUCHER = "voucher", "Voucher"
    LOYALTY = "loyalty", "Loyalty"
    REFERRAL = "referral", "Referral"
    ADJUSTMENT = "adjustment", "Adjustment"
    OVERPAYMENT = "overpayment", "Overpayment"
    POSTPAID = "postpaid", "Unbilled usage (postpaid accrual)"


class Pocket(TenantOwned):
    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="pockets")
    unit = UnitField(help_text="The unit the balance is counted in (seconds and bytes for time and data)")
    display_unit = UnitField(help_text="The unit people see (minutes, megabytes, ...)")
    balance = ExactDecimalField(default=0, help_text="Sum of the ledger entries")
    granted = ExactDecimalField(default=0, help_text="What the pocket was opened with")
    source = models.CharField(max_length=12, choices=Source.choices)
    label = models.CharField(max_length=200, blank=True)
    priority = models.SmallIntegerField(default=100, help_text="Lower is used first")
    valid_from = models.DateTimeField(default=clock.now)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Exclusive end; empty: no expiry")
    services = models.JSONField(default=list, blank=True, help_text="Service codes it pays for; empty: any")
    destination_groups = models.JSONField(default=list, blank=True,
                                          help_text="Destination groups it pays for; empty: any")
    subscription = models.ForeignKey("subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="pockets")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Exclusive")
    rollover_cap = ExactDecimalField(null=True, blank=True,
                                     help_text="Allowances: at most this much of the unused part rolls over")
    grant_key = models.CharField(max_length=200, null=True, blank=True,
                                 help_text="What granted it, unique: granting twice is a no-op")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["account", "priority", "valid_until", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "grant_key"], name="pocket_grant_key_per_tenant")]
        indexes = [models.Index(fields=["account", "unit"]), models.Index(fields=["tenant", "valid_until"])]

    def __str__(self) -> str:
        return f"{self.label or self.get_source_display()} ({self.display_unit})"

    @property
    def is_accrual(self) -> bool:
        return self.source == Source.POSTPAID


class LedgerEntry(TenantOwned):
    class Kind(models.TextChoices):
        GRANT = "grant", "Granted"
        TOPUP = "topup", "Top-up"
        DEBIT = "debit", "Debit"
        CREDIT = "credit", "Credit"
        ADJUSTMENT = "adjustment", "Adjustment"
        EXPIRY = "expiry", "Expired"
        ROLLOVER = "rollover", "Rolled over"

    pocket = models.ForeignKey(Pocket, on_delete=models.PROTECT, related_name="entries")
    at = models.DateTimeField(default=clock.now, db_index=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = ExactDecimalField(help_text="Signed, in the pocket's unit")
    balance_after = ExactDecimalField()
    service = models.CharField(max_length=60, blank=True)
    reason = models.TextField(blank=True)
    reference = models.CharField(max_length=200, blank=True,  # indexed in Meta: no LIKE index beside it
                                 help_text="What caused it: payment:..., voucher:..., usage:...")
    actor_kind = models.CharField(max_length=10)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)

    objects = LedgerManager()

    class Meta:
        ordering = ["pocket", "id"]
        verbose_name_plural = "ledger entries"
        # references are looked up by equality only; PostgreSQL's extra pattern index for a
        # db_index=True text field would cost every ledger insert for nothing
        indexes = [models.Index(fields=["reference"], name="ledger_reference_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.reason or self.reference})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("ledger entries are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("ledger entries are immutable")
