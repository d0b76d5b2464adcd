"""Promotion use cases: create a promotion, apply it (by code, or by plan on first activation),
grant the monthly pockets that are due, cancel an application, and read the stored discounts
for billing (`discounts_for`).

Months are calendar months from the application's start date, cut by `core/periods.py`
(from 31 Jan: 31 Jan - 28 Feb, 28 Feb - 31 Mar, 31 Mar - 30 Apr).
Every pocket goes through the pocket core (`open_pocket` with the grant key
`promotion:<application id>:<month number>`), so granting twice grants once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.dispatch import receiver

from obol.balances.models import Pocket, Promotion, PromotionApplication, Source
from obol.balances.models.promotions import normalise_code
from obol.balances.services import open_pocket, storage
from obol.catalog.models import PricePlan
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import Conflict, ObolError, ValidationFailed
from obol.core.money import Amount, sum_amounts
from obol.core.periods import Cycle, Frequency, Period
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.core.units import base_unit, get_unit
from obol.core.validation import full_clean
from obol.subscriptions import signals
from obol.subscriptions.models import Status, Subscription, SubscriptionChange
from obol.subscriptions.services import start_of_day, state_at

log = logging.getLogger(__name__)
State = PromotionApplication.State


class NotEligible(ValidationFailed):
    """The subscription may not take this promotion; `reason` is a stable word for why
    (subscription_terminated, plan, new_customers_only, reseller, fully_redeemed, currency,
    no_allowance), the message says it for people."""

    code = "promotion_not_eligible"

    def __init__(self, reason: str, message: str):
        super().__init__(message, field="code")
        self.reason = reason


def months_from(start: date, count: int) -> list[Period]:
    """`count` calendar months from `start`: from 31 Jan they are 31 Jan - 28 Feb, 28 Feb - 31 Mar, ..."""
    cycle = Cycle(Frequency.MONTH, day=start.day)
    months = [cycle.period_containing(start)]
    while len(months) < count:
        months.append(cycle.next(months[-1]))
    return months


# --- creating ----------------------------------------------------------------------------------


@transaction.atomic
def create_promotion(actor: Actor, **fields) -> Promotion:
    """A new promotion (the back office edits them in the admin); checked by the model's rules."""
    actor.require_write()
    promotion = Promotion(tenant=current_tenant(), **fields)
    full_clean(promotion)
    promotion.save()
    audit.record(
        actor, "promotion.create", promotion, {name: getattr(promotion, name) for name in Promotion.TERMS}
    )
    return promotion


# --- eligibility -------------------------------------------------------------------------------


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, field="code", code="promotion_invalid")


def _check_offer_open(promotion: Promotion, at: datetime) -> None:
    """promotion_invalid when the promotion cannot be taken at `at` at all."""
    if not promotion.active:
        raise _invalid(f"promotion {promotion.code} is no longer offered")
    if at < promotion.valid_from:
        raise _invalid(f"promotion {promotion.code} can be taken from {promotion.valid_from:%Y-%m-%d %H:%M}")
    if promotion.valid_until is not None and at >= promotion.valid_until:
        raise _invalid(f"promotion {promotion.code} expired on {promotion.valid_until:%Y-%m-%d %H:%M}")


def _earlier_activation(subscription: Subscription, start: date) -> SubscriptionChange | None:
    """What makes the customer not new: this subscription active since before `start` (the day the
    promotion would start), or another subscription of the customer activated before this one (or
    at all, when this one is not activated yet)."""
    activations = SubscriptionChange.objects.filter(kind=SubscriptionChange.Kind.ACTIVATE)
    own = activations.filter(subscription=subscription).order_by("pk").first()
    if own is not None and own.effective_date < start:
        return own
    others = activations.filter(subscription__account__customer_id=subscription.account.customer_id).exclude(
        subscription=subscription
    )
    if own is not None:
        others = others.filter(pk__lt=own.pk)
    return others.select_related("subscription").order_by("pk").first()


def _allowance(promotion: Promotion, plan_id: int, day: date) -> Amount | None:
    """The plan's allowance of `promotion.multiply_allowance_of` in force on `day`."""
    version = PricePlan.objects.get(pk=plan_id).version_at(day)
    rows = (
        []
        if version is None
        else list(version.allowances.filter(service__code=promotion.multiply_allowance_of))
    )
    if not rows:
        return None
    if len(rows) == 1:
        return Amount(rows[0].amount, rows[0].unit)
    return sum_amounts((storage(Amount(r.amount, r.unit)) for r in rows), base_unit(rows[0].unit))


def _money_unit(promotion: Promotion) -> str | None:
    """The currency a promotion gives money in (a fixed discount, a money grant), if any."""
    if promotion.discount_type == Promotion.DiscountType.AMOUNT:
        return promotion.discount_currency
    if promotion.grant_unit and get_unit(promotion.grant_unit).is_money:
        return promotion.grant_unit
    return None


def _check_eligible(promotion: Promotion, subscription: Subscription, start: date) -> None:
    account = subscription.account
    if subscription.status == Status.TERMINATED:
        raise NotEligible("subscription_terminated", f"subscription {subscription.number} is terminated")
    if promotion.plan_id and promotion.plan_id != subscription.plan_id:
        raise NotEligible(
            "plan",
            f"promotion {promotion.code} is only for plan {promotion.plan.code}, "
            f"subscription {subscription.number} is on {subscription.plan.code}",
        )
    if promotion.new_customers_only:
        earlier = _earlier_activation(subscription, start)
        if earlier is not None:
            raise NotEligible(
                "new_customers_only",
                f"promotion {promotion.code} is for new customers only; customer "
                f"{account.customer.number} already has subscription {earlier.subscription.number} "
                f"activated on {earlier.effective_date}",
            )
    if promotion.reseller_id:
        reseller_id = account.reseller_id or account.customer.reseller_id
        if reseller_id != promotion.reseller_id:
            raise NotEligible(
                "reseller",
                f"promotion {promotion.code} is only for customers of reseller {promotion.reseller.code}",
            )
    if promotion.max_redemptions is not None:
        taken = PromotionApplication.objects.filter(promotion=promotion).count()
        if taken >= promotion.max_redemptions:
            limit = promotion.max_redemptions
            raise NotEligible(
                "fully_redeemed",
                f"promotion {promotion.code} has reached its limit of {limit} "
                f"redemption{'' if limit == 1 else 's'}",
            )
    currency = _money_unit(promotion)
    if currency and currency != account.currency:
        raise NotEligible(
            "currency",
            f"promotion {promotion.code} is in {currency}, account {account.number} "
            f"bills in {account.currency}",
        )
    if promotion.multiply_allowance_of and _allowance(promotion, subscription.plan_id, start) is None:
        raise NotEligible(
            "no_allowance",
            f"plan {subscription.plan.code} includes no allowance of "
            f"{promotion.multiply_allowance_of} to multiply",
        )


# --- applying ----------------------------------------------------------------------------------


def _apply(actor: Actor, promotion: Promotion, subscription: Subscription, start: date, how: str):
    """Apply inside the caller's transaction, with the promotion row locked so that redemptions
    are counted one at a time. Raises NotEligible or the already-applied Conflict."""
    promotion = (
        Promotion.objects.select_for_update(of=("self",))
        .select_related("plan", "reseller")
        .get(pk=promotion.pk)
    )
    if PromotionApplication.objects.filter(promotion=promotion, subscription=subscription).exists():
        raise Conflict(
            f"promotion {promotion.code} is already applied to subscription {subscription.number}",
            field="code",
            code="promotion_already_applied",
        )
    _check_eligible(promotion, subscription, start)
    application = PromotionApplication.objects.create(
        tenant_id=subscription.tenant_id,
        promotion=promotion,
        subscription=subscription,
        account=subscription.account,
        applied_at=clock.now(),
        start_date=start,
        end_date=months_from(start, promotion.periods)[-1].end,
    )
    audit.record(
        actor,
        "subscription.promotion_apply",
        subscription,
        {
            "promotion": promotion.code,
            "application": application.pk,
            "kind": promotion.kind,
            "start_date": start,
            "end_date": application.end_date,
        },
        reason=how,
    )
    if promotion.kind == Promotion.Kind.GRANT:
        _grant_due(actor, application, start)
    return application


@transaction.atomic
def apply_code(actor: Actor, subscription: Subscription, code: str) -> PromotionApplication:
    """Apply the promotion with `code` to `subscription`, starting today (or when the subscription
    starts, if later); the first month's pocket of a grant is opened at once.

    Refusals: promotion_invalid (unknown, switched off, outside its offer window, or attached to a
    plan), promotion_not_eligible (with the reason), promotion_already_applied."""
    actor.require_write()
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("plan", "account__customer")
        .get(pk=subscription.pk)
    )
    promotion = Promotion.objects.filter(code=normalise_code(code)).first()
    if promotion is None:
        raise _invalid(f"no promotion with code {code!r}")
    if promotion.trigger != Promotion.Trigger.CODE:
        raise _invalid(
            f"promotion {promotion.code} comes with plan {promotion.plan.code} on activation; "
            "it cannot be applied by code"
        )
    _check_offer_open(promotion, clock.now())
    start = max(clock.today(current_tenant().timezone), subscription.start_date)
    return _apply(actor, promotion, subscription, start, f"promo code {promotion.code}")


def apply_plan_promotions(
    actor: Actor, subscription: Subscription, effective_date: date
) -> list[PromotionApplication]:
    """Apply the promotions attached to the subscription's plan, from `effective_date`, on its first
    activation. Runs inside the activation's transaction; idempotent (already applied ones are
    skipped), and a promotion the subscription is not eligible for is skipped, not an error."""
    activations = SubscriptionChange.objects.filter(
        subscription=subscription, kind=SubscriptionChange.Kind.ACTIVATE
    ).count()
    if activations > 1:
        return []
    now = clock.now()
    candidates = Promotion.objects.filter(
        trigger=Promotion.Trigger.PLAN, plan_id=subscription.plan_id, active=True, valid_from__lte=now
    ).order_by("pk")
    applied = []
    for promotion in candidates:
        if promotion.valid_until is not None and now >= promotion.valid_until:
            continue
        if PromotionApplication.objects.filter(promotion=promotion, subscription=subscription).exists():
            continue
        try:
            with transaction.atomic():
                how = f"comes with plan {subscription.plan.code}"
                applied.append(_apply(actor, promotion, subscription, effective_date, how))
        except NotEligible as refusal:
            log.info(
                "promotion %s not applied to %s: %s", promotion.code, subscription.number, refusal.message
            )
    return applied


@receiver(signals.subscription_activated, dispatch_uid="obol.balances.promotions")
def on_subscription_activated(sender, subscription, effective_date, actor, **kwargs):
    apply_plan_promotions(actor, subscription, effective_date)


# --- grants ------------------------------------------------------------------------------------


def _grant_amount(promotion: Promotion, subscription: Subscription, day: date) -> Amount | None:
    if promotion.grant_amount is not None:
        return Amount(promotion.grant_amount, promotion.grant_unit)
    step = state_at(subscription, day)
    allowance = _allowance(promotion, step.plan_id if step else subscription.plan_id, day)
    if allowance is None:
        return None
    extra = allowance * promotion.allowance_factor
    stored = storage(extra)
    rounded = round_amount(stored, RoundingPlace.ALLOWANCE, current_tenant().rounding)
    return extra if rounded == stored else rounded  # a fraction of a byte or second is rounded


def _grant_due(actor: Actor, application: PromotionApplication, today: date) -> int:
    """Open the pockets of the months that have started by `today` and are not granted yet
    (none from the month the subscription is terminated in). Returns how many were opened."""
    promotion, subscription = application.promotion, application.subscription
    opened = 0
    services = promotion.grant_services or (
        [promotion.multiply_allowance_of] if promotion.multiply_allowance_of else []
    )
    months = months_from(application.start_date, promotion.grant_periods)
    for month in range(application.grants_given + 1, promotion.grant_periods + 1):
        period_start, period_end = months[month - 1].start, months[month - 1].end
        if period_start > today:
            break
        if subscription.end_date is not None and period_start >= subscription.end_date:
            break
        amount = _grant_amount(promotion, subscription, period_start)
        if amount is not None:
            valid_from = start_of_day(period_start)
            valid_until = (
                valid_from + timedelta(days=promotion.pocket_validity_days)
                if promotion.pocket_validity_days
                else start_of_day(period_end)
            )
            label = (
                promotion.name
                if promotion.grant_periods == 1
                else (f"{promotion.name} ({month}/{promotion.grant_periods})")
            )
            _, created = open_pocket(
                actor,
                application.account,
                amount,
                source=Source.PROMOTION,
                label=label[:200],
                valid_from=valid_from,
                valid_until=valid_until,
                services=services,
                grant_key=f"{application.grant_key_prefix}{month}",
                reason=f"promotion {promotion.code}",
                subscription=subscription,
                period_start=period_start,
                period_end=period_end,
            )
            opened += created
        application.grants_given = month
    application.save(update_fields=["grants_given"])
    return opened


@dataclass
class GrantRun:
    granted: int = 0  # pockets opened
    ended: int = 0  # applications whose last month is over
    problems: list[str] = field(default_factory=list)  # application: error, the others went on


def grant_due_promotions(actor: Actor, at: datetime | None = None) -> GrantRun:
    """The daily job (tenant in scope): open every monthly promotion pocket due by `at` and end
    applications whose months are over (or whose subscription is terminated). Safe to run any
    number of times: a month is granted once. One application's error does not stop the others."""
    actor.require_write()
    today = (at or clock.now()).astimezone(ZoneInfo(current_tenant().timezone)).date()
    run = GrantRun()
    for pk in (
        PromotionApplication.objects.filter(state=State.ACTIVE).order_by("pk").values_list("pk", flat=True)
    ):
        try:
            with transaction.atomic():
                application = (
                    PromotionApplication.objects.select_for_update(of=("self",))
                    .select_related("promotion", "subscription", "account")
                    .get(pk=pk)
                )
                if application.state != State.ACTIVE:
                    continue
                if application.promotion.kind == Promotion.Kind.GRANT:
                    run.granted += _grant_due(actor, application, today)
                run.ended += _end_if_over(actor, application, today)
        except ObolError as error:
            run.problems.append(f"promotion application {pk}: {error.message}")
    return run


def _end_if_over(actor: Actor, application: PromotionApplication, today: date) -> bool:
    terminated_on = application.subscription.end_date
    end = min(application.end_date, terminated_on) if terminated_on else application.end_date
    if end > today:
        return False
    before = application.end_date
    application.state, application.end_date = State.ENDED, max(end, application.start_date)
    application.save(update_fields=["state", "end_date"])
    audit.record(
        actor,
        "subscription.promotion_end",
        application.subscription,
        {
            "promotion": application.promotion.code,
            "application": application.pk,
            "end_date": [before, application.end_date],
        },
        reason="subscription terminated" if end < before else "all months over",
    )
    return True


@transaction.atomic
def cancel_application(
    actor: Actor, application: PromotionApplication, *, reason: str, effective_date: date | None = None
) -> PromotionApplication:
    """Stop an application from `effective_date` (default today): no more grants, and its discount
    no longer applies from that day (from its start date: never). Pockets already granted stay."""
    actor.require_write()
    if not (reason or "").strip():
        raise ValidationFailed("reason: a cancellation needs a reason", field="reason")
    application = (
        PromotionApplication.objects.select_for_update(of=("self",))
        .select_related("promotion", "subscription")
        .get(pk=application.pk)
    )
    if application.state == State.CANCELLED:
        raise Conflict(
            f"promotion {application.promotion.code} on {application.subscription.number} is "
            "already cancelled",
            field="state",
            code="illegal_transition",
        )
    day = effective_date or clock.today(current_tenant().timezone)
    before = (application.state, application.end_date)
    application.state = State.CANCELLED
    application.end_date = max(application.start_date, min(application.end_date, day))
    application.save(update_fields=["state", "end_date"])
    audit.record(
        actor,
        "subscription.promotion_cancel",
        application.subscription,
        {
            "promotion": application.promotion.code,
            "application": application.pk,
            "state": [before[0], application.state],
            "end_date": [before[1], application.end_date],
        },
        reason,
    )
    return application


def granted_pockets(application: PromotionApplication):
    """The pockets an application has opened, month by month."""
    return Pocket.objects.filter(grant_key__startswith=application.grant_key_prefix).order_by(
        "period_start", "pk"
    )


# --- discounts for billing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Discount:
    """One stored discount that billing applies to the charges of `subscription_id`.

    Exactly one of: `percent` (20 means 20% off), `amount` (off per month of the window, in the
    account's currency), `first_period_free` (the charges of the first month are free). Only
    charges whose kind is in `charge_kinds` and whose code is in `charge_codes` are discounted;
    an empty tuple means no restriction. It applies to the days in [starts, ends)."""

    promotion_code: str
    promotion_name: str
    application_id: int
    subscription_id: int
    kind: str  # percent | amount | first_period_free
    percent: Decimal | None
    amount: Amount | None
    first_period_free: bool
    charge_kinds: tuple[str, ...]
    charge_codes: tuple[str, ...]
    starts: date
    ends: date  # exclusive


def discounts_for(account, period_start: date, period_end: date) -> list[Discount]:
    """The discounts of `account` whose window overlaps [period_start, period_end) (end exclusive),
    oldest first. A cancelled application counts for the days before its cancellation."""
    return discounts_of([account.pk], period_start, period_end).get(account.pk, [])


def discounts_of(account_ids, period_start: date, period_end: date) -> dict[int, list[Discount]]:
    """`discounts_for` of many accounts in one query: {account id: its discounts}."""
    applications = (
        PromotionApplication.objects.filter(
            account_id__in=list(account_ids),
            promotion__kind=Promotion.Kind.DISCOUNT,
            start_date__lt=period_end,
            end_date__gt=period_start,
        )
        .select_related("promotion")
        .order_by("start_date", "pk")
    )
    found: dict[int, list[Discount]] = {}
    for application in applications:
        if application.end_date <= application.start_date:
            continue
        promotion = application.promotion
        kind = promotion.discount_type
        found.setdefault(application.account_id, []).append(
            Discount(
                promotion_code=promotion.code,
                promotion_name=promotion.name,
                application_id=application.pk,
                subscription_id=application.subscription_id,
                kind=kind,
                percent=promotion.discount_percent if kind == Promotion.DiscountType.PERCENT else None,
                amount=(
                    Amount(promotion.discount_amount, promotion.discount_currency)
                    if kind == Promotion.DiscountType.AMOUNT
                    else None
                ),
                first_period_free=kind == Promotion.DiscountType.FIRST_PERIOD_FREE,
                charge_kinds=tuple(promotion.charge_kinds),
                charge_codes=tuple(promotion.charge_codes),
                starts=application.start_date,
                ends=application.end_date,
            )
        )
    return found
