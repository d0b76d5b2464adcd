"""Bring-a-friend referrals: the tenant's program, every customer's code, and each referral.

A referral is pending from signup until the program's qualifying event (first activation of a
subscription, or the first invoice paid), then qualified, then credited once its credits are in
pockets. Staff may refuse one that is not credited yet.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.money import Amount
from obol.core.tenancy import TenantOwned

__all__ = ["Referral", "ReferralCode", "ReferralProgram"]


class ReferralProgram(TenantOwned):
    class Event(models.TextChoices):
        FIRST_ACTIVATION = "first_activation", "First subscription activated"
        FIRST_INVOICE_PAID = "first_invoice_paid", "First invoice paid"

    name = models.CharField(max_length=200, blank=True)
    qualifying_event = models.CharField(max_length=20, choices=Event.choices, default=Event.FIRST_ACTIVATION)
    referrer_value = ExactDecimalField(help_text="What the referrer gets")
    referrer_unit = UnitField(help_text="EUR for money credit, or any unit (gigabyte, minute, package, ...)")
    referred_value = ExactDecimalField(null=True, blank=True,
                                       help_text="What the new customer gets; empty: nothing")
    referred_unit = UnitField(blank=True)
    validity_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="The credit pockets expire after this; empty: never")
    active = models.BooleanField(default=True, help_text="Open for new signups")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["-active", "-id"]
        constraints = [models.UniqueConstraint(
            fields=["tenant"], condition=models.Q(active=True), name="referral_program_one_active_per_tenant",
            violation_error_code="invalid_duplicate",
            violation_error_message="There is already an active referral program; deactivate it first.",
        )]

    def __str__(self) -> str:
        return self.name or f"Referral program ({self.get_qualifying_event_display()})"

    @property
    def referrer_credit(self) -> Amount:
        return Amount(self.referrer_value, self.referrer_unit)

    @property
    def referred_credit(self) -> Amount | None:
        if self.referred_value is None:
            return None
        return Amount(self.referred_value, self.referred_unit)

    def clean(self):
        if self.referrer_value is not None and self.referrer_value <= 0:
            raise ValidationError({"referrer_value": "must be more than zero"})
        if self.referred_value is not None:
            if self.referred_value <= 0:
                raise ValidationError({"referred_value": "must be more than zero, or empty for no credit"})
            if not self.referred_unit:
                raise ValidationError({"referred_unit": "the unit of the new customer's credit is missing"})
        # The constraint names the tenant, which the back-office form leaves out: check it here too.
        others = ReferralProgram._base_manager.filter(tenant_id=self.tenant_id, active=True)
        if self.active and others.exclude(pk=self.pk).exists():
            raise ValidationError({"active": ValidationError(
                "There is already an active referral program; deactivate it first.",
                code="invalid_duplicate")})


class ReferralCode(TenantOwned):
    """A customer's code to hand to friends; made on first request (`referral_code_for`)."""

    customer = models.OneToOneField("customers.Customer", on_delete=models.PROTECT,
                                    related_name="referral_code")
    code = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="referral_code_per_tenant")]

    def __str__(self) -> str:
        return self.code


class Referral(TenantOwned):
    class State(models.TextChoices):
        PENDING = "pending", "Pending (waiting for the qualifying event)"
        QUALIFIED = "qualified", "Qualified (credit not granted yet)"
        CREDITED = "credited", "Credited"
        REFUSED = "refused", "Refused"

    program = models.ForeignKey(ReferralProgram, on_delete=models.PROTECT, related_name="referrals")
    referrer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT,
                                 related_name="referrals_made")
    referred = models.OneToOneField("customers.Customer", on_delete=models.PROTECT,
                                    related_name="referred_by")
    code = models.CharField(max_length=16, help_text="The code used at signup")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    qualified_at = models.DateTimeField(null=True, blank=True)
    qualified_by = models.CharField(max_length=200, blank=True,
                                    help_text="The event: subscription:S-..., invoice:...")
    credited_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="Why it is refused, or what keeps it from being credited")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Referral {self.code} → customer {self.referred_id} ({self.state})"
