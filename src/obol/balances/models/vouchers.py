"""Voucher batches, their vouchers (stored as a keyed hash, never the code) and failed redemption
attempts (what the rate limit counts).

A batch says what each of its vouchers is worth (`value` in `unit`: money, minutes, SMS, ...),
until when the vouchers can be redeemed (`expires_at`, exclusive) and what the pocket opened on
redemption looks like (`validity_days` after redemption, `services` it pays for). A voucher is
used once: `redeemed_at`, `account` and `pocket` are set together, by `vouchers.redeem`.
"""
from __future__ import annotations

from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantOwned

__all__ = ["RedemptionFailure", "Voucher", "VoucherBatch"]


class VoucherBatch(TenantOwned):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        BLOCKED = "blocked", "Blocked (can be unblocked)"
        CANCELLED = "cancelled", "Cancelled (final)"

    name = models.CharField(max_length=120,
                            help_text="Unique in the tenant; names the batch on the command line")
    value = ExactDecimalField(help_text="What one voucher is worth, in `unit`")
    unit = UnitField(help_text="EUR, BTC, minute, sms, megabyte, play, point, package, ...")
    validity_days = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="The pocket opened on redemption lasts this many days; empty: no end")
    services = models.JSONField(default=list, blank=True,
                                help_text="Service codes the pocket pays for; empty: any")
    expires_at = models.DateTimeField(help_text="Vouchers can be redeemed before this moment (exclusive)")
    issued = models.PositiveIntegerField(help_text="How many vouchers were generated")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "voucher batches"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="voucher_batch_name_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.name

    def is_expired(self, at=None) -> bool:
        return (at or clock.now()) >= self.expires_at


class Voucher(TenantOwned):
    batch = models.ForeignKey(VoucherBatch, on_delete=models.PROTECT, related_name="vouchers")
    code_hash = models.CharField(max_length=64,
                                 help_text="HMAC-SHA256 of the code; the code itself is never stored")
    hint = models.CharField(max_length=4, help_text="Last four characters of the code, for support")
    redeemed_at = models.DateTimeField(null=True, blank=True)
    account = models.ForeignKey("customers.BillingAccount", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="vouchers", help_text="The account that redeemed it")
    pocket = models.ForeignKey("balances.Pocket", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+", help_text="The pocket its redemption opened")
    redeemed_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code_hash"], name="voucher_code_hash_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"…{self.hint} ({self.batch.name})"

    def state(self, at=None) -> str:
        """redeemed | cancelled | blocked | expired | available"""
        if self.redeemed_at is not None:
            return "redeemed"
        if self.batch.status != VoucherBatch.Status.ACTIVE:
            return self.batch.status
        return "expired" if self.batch.is_expired(at) else "available"


class RedemptionFailure(TenantOwned):
    """One refused redemption attempt. Recent rows per account and per IP address are what the rate
    limit counts; the attempted code is not kept."""

    at = models.DateTimeField(default=clock.now)
    account = models.ForeignKey("customers.BillingAccount", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    ip = models.GenericIPAddressField(null=True, blank=True)
    reason = models.CharField(max_length=40, help_text="The refusal's error code (voucher_invalid, ...)")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "account", "at"]),
            models.Index(fields=["tenant", "ip", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.reason}"
