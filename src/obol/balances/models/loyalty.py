"""Loyalty: the tenant's earning rule (points per amount paid) and the rewards points buy.

Points themselves live in pockets (unit `point`, source loyalty), one per payment that earned
them; a redeemed reward is a debit of those pockets and a new pocket holding what it grants.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.money import Amount
from obol.core.tenancy import TenantOwned
from obol.core.units import UNITS

__all__ = ["LoyaltyReward", "LoyaltyRule"]


def _others(obj):
    """The other rows of the object's tenant (the admin form has no tenant field to check with)."""
    return type(obj)._base_manager.filter(tenant_id=obj.tenant_id).exclude(pk=obj.pk)


def _check_services(services) -> None:
    if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
        raise ValidationError({"services": "a list of service codes, e.g. [\"data\"]; empty: any service"})


class LoyaltyRule(TenantOwned):
    """`points` points for every `per_amount` paid in `currency`, rounded down to whole points
    (1 point per 1.00 EUR: 12.99 EUR paid earns 12 points). One active rule per currency."""

    name = models.CharField(max_length=200, blank=True)
    currency = UnitField(money_only=True, help_text="Payments in this currency earn points")
    points = ExactDecimalField(default=1, help_text="Points earned for every `per amount` paid")
    per_amount = ExactDecimalField(default=1, help_text="In the rule's currency")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["currency", "-active", "id"]
        constraints = [models.UniqueConstraint(
            fields=["tenant", "currency"], condition=models.Q(active=True),
            name="loyalty_rule_one_active_per_currency", violation_error_code="invalid_duplicate",
            violation_error_message=("There is already an active loyalty rule for this currency; "
                                     "deactivate it first."),
        )]

    def __str__(self) -> str:
        return self.name or f"{self.points} points per {self.per_amount} {self.currency}"

    def clean(self):
        if self.points is not None and self.points <= 0:
            raise ValidationError({"points": "must be more than zero"})
        if self.per_amount is not None and self.per_amount <= 0:
            raise ValidationError({"per_amount": "must be more than zero"})
        # The constraint names the tenant, which the back-office form leaves out: check it here too.
        if self.active and _others(self).filter(active=True, currency=self.currency).exists():
            raise ValidationError({"currency": ValidationError(
                "There is already an active loyalty rule for this currency; deactivate it first.",
                code="invalid_duplicate")})


class LoyaltyReward(TenantOwned):
    """What `cost` points buy: a pocket holding `grant_value` `grant_unit` (money credit in the
    account's currency, or units such as 500 megabyte or 1 package), valid for `validity_days`
    when set, usable only for `services` when set."""

    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=200)
    cost = ExactDecimalField(help_text="Whole points")
    grant_value = ExactDecimalField(help_text="How much the reward pocket holds")
    grant_unit = UnitField(help_text="EUR for money credit, megabyte, minute, sms, package, ...")
    validity_days = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no expiry")
    services = models.JSONField(default=list, blank=True, help_text="Service codes it pays for; empty: any")
    active = models.BooleanField(default=True, help_text="Open for redemption")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="loyalty_reward_code_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cost} points)"

    @property
    def grant(self) -> Amount:
        return Amount(self.grant_value, self.grant_unit)

    def clean(self):
        if self.cost is not None and (self.cost <= 0 or self.cost != self.cost.to_integral_value()):
            raise ValidationError({"cost": "a whole number of points, more than zero"})
        if self.grant_value is not None and self.grant_value <= 0:
            raise ValidationError({"grant_value": "must be more than zero"})
        if self.grant_unit in UNITS and UNITS[self.grant_unit].kind == "points":
            raise ValidationError({"grant_unit": "points buy money or units, not points"})
        _check_services(self.services)
        if _others(self).filter(code=self.code).exists():
            raise ValidationError({"code": ValidationError("A reward with this code already exists.",
                                                           code="invalid_duplicate")})
