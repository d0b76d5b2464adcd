"""Promotions: rules that grant pockets (100 bonus minutes, double data for 3 months) or store
discounts for billing (20% off for 6 months, first month free), and their applications to
subscriptions.

A promotion is either attached to a plan (applied when a subscription to that plan is first
activated) or taken with its code. Its terms cannot change once it has been applied: make a new
promotion instead. Periods are calendar months from the application's start date.
"""

from __future__ import annotations

import re

from django.db import models

from obol.core import clock
from obol.core.errors import ValidationFailed
from obol.core.fields import ExactDecimalField, UnitField
from obol.core.tenancy import TenantOwned
from obol.core.units import get_unit
from obol.core.validation import as_django_error

__all__ = ["Promotion", "PromotionApplication"]

# The code of a broken rule (not Django's "invalid", which a form would replace by "Enter a number.").
INVALID = "invalid_promotion"
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,39}$")


def normalise_code(code: str) -> str:
    """Promotion codes are case-insensitive: stored and compared in upper case."""
    return (code or "").strip().upper()


class Promotion(TenantOwned):
    class Kind(models.TextChoices):
        GRANT = "grant", "Grants a pocket"
        DISCOUNT = "discount", "Discount on charges"

    class Trigger(models.TextChoices):
        PLAN = "plan", "Attached to a plan (applied on activation)"
        CODE = "code", "Promo code (applied to a subscription)"

    class DiscountType(models.TextChoices):
        PERCENT = "percent", "Percentage off"
        AMOUNT = "amount", "Fixed amount off per month"
        FIRST_PERIOD_FREE = "first_period_free", "First period free"

    code = models.CharField(max_length=40, help_text="Letters, digits, - and _ (kept in upper case); unique")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    trigger = models.CharField(max_length=6, choices=Trigger.choices)
    plan = models.ForeignKey(
        "catalog.PricePlan",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="promotions",
        help_text="Plan-attached: the plan it comes with. Code: only for this plan (empty: any)",
    )
    valid_from = models.DateTimeField(default=clock.now, help_text="Can be taken from")
    valid_until = models.DateTimeField(
        null=True, blank=True, help_text="Can be taken until (exclusive); empty: open"
    )
    active = models.BooleanField(default=True, help_text="Switched off, it can no longer be taken")
    new_customers_only = models.BooleanField(
        default=False, help_text="Only for a customer with no earlier activated subscription"
    )
    reseller = models.ForeignKey(
        "customers.Reseller",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="promotions",
        help_text="Only for this reseller's customers",
    )
    max_redemptions = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many applications; empty: no limit"
    )

    # kind = grant: a fixed amount, or `allowance_factor` times the plan's allowance of a service
    grant_amount = ExactDecimalField(null=True, blank=True, help_text="Granted per period, in grant_unit")
    grant_unit = UnitField(blank=True, help_text="minute, gigabyte, sms, EUR, ...")
    multiply_allowance_of = models.CharField(
        max_length=60,
        blank=True,
        help_text="Service code: grant allowance_factor x the plan's allowance of it",
    )
    allowance_factor = ExactDecimalField(null=True, blank=True, help_text="1 doubles the allowance")
    grant_services = models.JSONField(
        default=list,
        blank=True,
        help_text="Service codes the pocket pays for; empty: any (with multiply_allowance_of: that service)",
    )
    grant_periods = models.PositiveSmallIntegerField(default=1, help_text="Monthly grants (1: a one-off)")
    pocket_validity_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each pocket is valid this many days; empty: until its month ends"
    )

    # kind = discount
    discount_type = models.CharField(max_length=20, choices=DiscountType.choices, blank=True)
    discount_percent = ExactDecimalField(null=True, blank=True, help_text="Percentage off (20 is 20%)")
    discount_amount = ExactDecimalField(
        null=True, blank=True, help_text="Off per month, in discount_currency"
    )
    discount_currency = UnitField(money_only=True, blank=True)
    discount_periods = models.PositiveSmallIntegerField(default=1, help_text="Months the discount runs")
    charge_kinds = models.JSONField(
        default=list,
        blank=True,
        help_text="Only charges of these kinds (recurring, one_time, ...); empty: all",
    )
    charge_codes = models.JSONField(
        default=list, blank=True, help_text="Only charges with these codes; empty: all"
    )
    created_at = models.DateTimeField(default=clock.now, editable=False)

    # What an application's grants and discounts are made of: fixed once the promotion was applied.
    TERMS = ("code", "kind", "trigger", "plan_id", "grant_amount", "grant_unit", "multiply_allowance_of",
             "allowance_factor", "grant_services", "grant_periods", "pocket_validity_days", "discount_type",
             "discount_percent", "discount_amount", "discount_currency", "discount_periods", "charge_kinds",
             "charge_codes")

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="promotion_code_per_tenant")]
        indexes = [models.Index(fields=["tenant", "trigger", "plan"])]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def periods(self) -> int:
        """Months an application runs."""
        if self.kind == self.Kind.GRANT:
            return self.grant_periods
        return 1 if self.discount_type == self.DiscountType.FIRST_PERIOD_FREE else self.discount_periods

    def clean(self):
        self.code = normalise_code(self.code)
        try:
            self._check_rules()
        except ValidationFailed as error:
            raise as_django_error(error) from None

    def _check_rules(self) -> None:
        if not CODE_PATTERN.match(self.code):
            raise _refused("code", "1 to 40 letters, digits, - or _")
        if self.valid_until is not None and self.valid_from and self.valid_until <= self.valid_from:
            raise _refused("valid_until", "must be after valid_from")
        if self.trigger == self.Trigger.PLAN and self.plan_id is None:
            raise _refused("plan", "a plan-attached promotion needs its plan")
        if self.kind == self.Kind.GRANT:
            self._check_grant()
        elif self.kind == self.Kind.DISCOUNT:
            self._check_discount()
        self._check_terms_kept()

    def _check_grant(self) -> None:
        fixed = self.grant_amount is not None or bool(self.grant_unit)
        if fixed == (bool(self.multiply_allowance_of) or self.allowance_factor is not None):
            raise _refused("grant_amount", "give either grant_amount and grant_unit, or "
                                           "multiply_allowance_of and allowance_factor")
        if fixed and (self.grant_amount is None or self.grant_amount <= 0):
            raise _refused("grant_amount", "must be more than zero")
        if fixed and not self.grant_unit:
            raise _refused("grant_unit", "the unit of the grant is missing")
        if fixed:
            get_unit(self.grant_unit)
        if not fixed and not self.multiply_allowance_of:
            raise _refused("multiply_allowance_of", "the service code is missing")
        if not fixed and (self.allowance_factor is None or self.allowance_factor <= 0):
            raise _refused("allowance_factor", "must be more than zero")
        if self.grant_periods < 1:
            raise _refused("grant_periods", "at least 1")
        if self.pocket_validity_days == 0:
            raise _refused("pocket_validity_days", "at least 1 day, or empty")
        if not _is_list_of_text(self.grant_services):
            raise _refused("grant_services", "a list of service codes")
        if self.discount_type or self.discount_percent is not None or self.discount_amount is not None:
            raise _refused("discount_type", "a grant promotion has no discount")

    def _check_discount(self) -> None:
        from obol.catalog.models import Charge

        kind, types = self.discount_type, self.DiscountType
        if not kind:
            raise _refused("discount_type", "percent, amount or first_period_free")
        percent, amount = self.discount_percent, self.discount_amount
        if kind == types.PERCENT and (percent is None or not 0 < percent <= 100):
            raise _refused("discount_percent", "more than 0 and at most 100")
        if kind != types.PERCENT and percent is not None:
            raise _refused("discount_percent", "only for a percentage discount")
        if kind == types.AMOUNT and (amount is None or amount <= 0):
            raise _refused("discount_amount", "must be more than zero")
        if kind == types.AMOUNT and not self.discount_currency:
            raise _refused("discount_currency", "the currency of the amount is missing")
        if kind != types.AMOUNT and amount is not None:
            raise _refused("discount_amount", "only for a fixed-amount discount")
        if self.discount_periods < 1:
            raise _refused("discount_periods", "at least 1")
        if kind == types.FIRST_PERIOD_FREE and self.discount_periods != 1:
            raise _refused("discount_periods", "the first period is 1 month; use a 100% discount for more")
        if not _is_list_of_text(self.charge_kinds) or set(self.charge_kinds) - set(Charge.Kind.values):
            raise _refused("charge_kinds", f"a list of {', '.join(Charge.Kind.values)}")
        if not _is_list_of_text(self.charge_codes):
            raise _refused("charge_codes", "a list of charge codes")
        if self.grant_amount is not None or self.grant_unit or self.multiply_allowance_of:
            raise _refused("grant_amount", "a discount promotion grants no pocket")

    def _check_terms_kept(self) -> None:
        if self.pk is None or not self.applications.exists():
            return
        stored = Promotion._base_manager.filter(pk=self.pk).values(*self.TERMS).first()
        for name in self.TERMS:
            if stored[name] != getattr(self, name):
                raise _refused(name.removesuffix("_id"), f"promotion {stored['code']} has been applied; its "
                                                         "terms cannot change (make a new promotion)")


def _refused(field: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {reason}", field=field, code=INVALID)


def _is_list_of_text(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class PromotionApplication(TenantOwned):
    """A promotion applied to a subscription: grants are pockets (`grant_key`
    promotion:<id>:<month>), discounts are read by billing through `discounts_for`."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"
        CANCELLED = "cancelled", "Cancelled"

    promotion = models.ForeignKey(Promotion, on_delete=models.PROTECT, related_name="applications")
    subscription = models.ForeignKey(
        "subscriptions.Subscription", on_delete=models.PROTECT, related_name="promotion_applications"
    )
    account = models.ForeignKey(
        "customers.BillingAccount", on_delete=models.PROTECT, related_name="promotion_applications"
    )
    applied_at = models.DateTimeField(default=clock.now)
    start_date = models.DateField(help_text="First day of the first month")
    end_date = models.DateField(help_text="Exclusive: the first day it no longer applies")
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    grants_given = models.PositiveSmallIntegerField(default=0, help_text="Monthly grants made so far")

    class Meta:
        ordering = ["-applied_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["promotion", "subscription"], name="promotion_once_per_subscription"
            )
        ]
        indexes = [models.Index(fields=["tenant", "state"]), models.Index(fields=["account", "start_date"])]

    def __str__(self) -> str:
        return f"{self.promotion.code} on {self.subscription.number}"

    @property
    def grant_key_prefix(self) -> str:
        return f"promotion:{self.pk}:"
