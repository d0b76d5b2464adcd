"""Real-time charging: per-tenant settings, sessions with their reservations, the answered
requests (idempotency) and low-balance events.

A session's reservation (`holds`) is what its used + granted units cost, taken in the pocket order
and kept as {pocket id: amount} ("0": the unbilled-usage pocket): other sessions of the account see
those pockets' balances minus what open, unexpired sessions hold. Nothing is booked in the ledger
until the session's usage is committed (terminate, or the sweeper after expiry).
"""
from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField
from obol.core.tenancy import TenantOwned


class ChargingSettings(TenantOwned):
    grant_validity_s = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(1)],
        help_text="How long a grant is held: a session not updated within it expires and is swept")
    max_grant_s = models.PositiveIntegerField(
        default=3600, help_text="Voice: at most this many seconds per grant (a request for more gets this)")
    low_balance_threshold = ExactDecimalField(
        null=True, blank=True,
        help_text="Money left (account currency) below which a commit records a low-balance event; empty: none")
    stop_open_sessions_when_suspended = models.BooleanField(
        default=True, help_text="Open sessions of a subscription suspended meanwhile get no further grants")

    class Meta:
        verbose_name = verbose_name_plural = "charging settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="charging_settings_one_per_tenant")]

    def __str__(self) -> str:
        return f"charging settings of tenant {self.tenant_id}"


class ChargingSession(TenantOwned):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        TERMINATED = "terminated", "Terminated"
        EXPIRED = "expired", "Expired (swept)"

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="The session id clients use")
    # indexed by (account, state) below; each index costs every charging operation a write
    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                db_index=False)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+",
                                     db_index=False)
    identifier = models.CharField(max_length=100, help_text="The subscriber as the network named it")
    service_kind = models.CharField(max_length=20)
    service = models.CharField(max_length=60, help_text="The catalog's service code")
    destination = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(help_text="Priced as a usage record starting then")
    terms = models.JSONField(help_text="The rate that prices the session (usage.rating.single.Terms)")
    used = models.BigIntegerField(default=0, help_text="Units reported used (seconds, bytes, events)")
    granted = models.BigIntegerField(default=0, help_text="Units of the last grant")
    holds = models.JSONField(default=dict, blank=True, help_text="Reservation: {pocket id: amount}; 0: unbilled")
    expires_at = models.DateTimeField(help_text="The last grant's validity")
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN)
    charged = ExactDecimalField(default=Decimal(0), help_text="Money committed")
    included = models.BigIntegerField(default=0, help_text="Units committed from allowances")
    shortfall = ExactDecimalField(default=Decimal(0), help_text="Money used that nothing covered")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Only open sessions are looked up (an account's holds; the sweeper's expired ones), so one
        # partial index of the open ones serves both; no index names used, granted, holds or
        # expires_at, so an update rewrites the row in place (PostgreSQL's HOT) without index writes.
        indexes = [models.Index(fields=["account"], condition=models.Q(state="open"), name="charging_open_by_account")]

    def __str__(self) -> str:
        return f"{self.service_kind} session {self.key} ({self.state})"

    @property
    def record_key(self) -> str:
        return f"charging:{self.key}"


class ChargingRequest(TenantOwned):
    """Each answered request by its request id: a repeat gets the same answer and changes nothing."""

    # the unique (tenant, request_id) index leads with the tenant: no index of its own
    tenant = models.ForeignKey("core.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    request_id = models.CharField(max_length=200)
    operation = models.CharField(max_length=12)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the operation and its parameters")
    session = models.ForeignKey(ChargingSession, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                db_index=False)
    code = models.CharField(max_length=40)
    answer = models.JSONField()
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "request_id"], name="charging_request_once")]

    def __str__(self) -> str:
        return f"{self.operation} {self.request_id}: {self.code}"


class LowBalanceEvent(TenantOwned):
    """A commit left the account's money below the tenant's threshold (the notifications issue
    delivers these; `notified_at` stays empty until then)."""

    account = models.ForeignKey("customers.BillingAccount", on_delete=models.PROTECT, related_name="+")
    balance = ExactDecimalField(help_text="Money left in the account's money pockets after the commit")
    threshold = ExactDecimalField()
    currency = models.CharField(max_length=12)
    session = models.ForeignKey(ChargingSession, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"low balance {self.balance} {self.currency} (account {self.account_id})"
