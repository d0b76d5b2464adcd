"""Subscription use cases: subscribe, transitions, plan and quantity changes, usage identifiers.
Each runs in one transaction with the subscription row locked, appends to the timeline and
writes the audit trail."""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction

from obol.catalog.models import PricePlan
from obol.core import audit, locks
from obol.core.actors import Actor
from obol.core.errors import Conflict, ValidationFailed
from obol.core.money import to_decimal
from obol.core.numbering import next_number
from obol.core.tenancy import current_tenant
from obol.core.validation import full_clean
from obol.customers.models import BillingAccount
from obol.subscriptions import identifiers, signals, timeline
from obol.subscriptions.models import Subscription, SubscriptionChange, UsageIdentifier

Kind = SubscriptionChange.Kind


def steps_of(subscription: Subscription) -> list[timeline.Step]:
    return [
        timeline.Step(c.seq, c.kind, c.effective_date, c.status, c.plan_id, c.quantity)
        for c in subscription.changes.order_by("seq")
    ]


def state_at(subscription: Subscription, day: date) -> timeline.Step | None:
    return timeline.state_at(steps_of(subscription), day)


def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in the tenant's time zone."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(current_tenant().timezone))


def _lock(subscription: Subscription) -> Subscription:
    return Subscription.objects.select_for_update().get(pk=subscription.pk)


def _quantity(value) -> Decimal:
    quantity = to_decimal(value, field="quantity")
    if quantity <= 0:
        raise ValidationFailed("quantity: must be greater than zero", field="quantity")
    return quantity


def _check_plan_for(account: BillingAccount, plan: PricePlan, day: date) -> None:
    if plan.currency != account.currency:
        raise ValidationFailed(
            f"plan: {plan.code} is priced in {plan.currency}, account {account.number} bills in {account.currency}",
            field="plan",
        )
    if plan.reseller_id and plan.reseller_id != account.reseller_id:
        raise ValidationFailed(f"plan: {plan.code} is sold only by reseller {plan.reseller.code}", field="plan")
    if plan.version_at(day) is None:
        raise ValidationFailed(f"plan: {plan.code} has no version in force on {day}", field="plan")


def _append(actor, subscription, kind, effective_date, *, status, plan, quantity, reason, changes):
    steps = steps_of(subscription)
    timeline.check_effective_date(steps, effective_date)
    SubscriptionChange.objects.create(
        tenant_id=subscription.tenant_id,
        subscription=subscription,
        seq=(steps[-1].seq + 1) if steps else 1,
        kind=kind,
        effective_date=effective_date,
        status=status,
        plan=plan,
        quantity=quantity,
        reason=reason,
    )
    audit.record(actor, f"subscription.{kind}", subscription, {"effective_date": effective_date, **changes}, reason)


def check_subscribable(account: BillingAccount, plan: PricePlan, start_date: date, quantity) -> Decimal:
    """Everything that must hold before `account` may subscribe to `plan`; returns the quantity."""
    if account.status != BillingAccount.Status.ACTIVE:
        raise ValidationFailed(f"account: {account.number} is {account.status}", field="account")
    if not plan.active:
        raise ValidationFailed(f"plan: {plan.code} is not open for new subscriptions", field="plan")
    _check_plan_for(account, plan, start_date)
    return _quantity(quantity)


@transaction.atomic
def subscribe(
    actor: Actor,
    account: BillingAccount,
    plan: PricePlan,
    *,
    start_date: date,
    quantity=1,
    activate: bool = True,
    identifiers_: list[dict] = (),
    number: str | None = None,
    reason: str = "",
) -> Subscription:
    """Subscribe `account` to `plan` from `start_date` (a future date is fine). With `activate`
    the subscription is active from its start date; without, it stays pending until activated."""
    actor.require_write()
    quantity = check_subscribable(account, plan, start_date, quantity)
    subscription = Subscription(
        tenant=current_tenant(),
        number=number or next_number("subscription", "S-"),
        account=account,
        plan=plan,
        quantity=quantity,
        status=timeline.PENDING,
        start_date=start_date,
    )
    full_clean(subscription)
    subscription.save()
    _append(actor, subscription, Kind.CREATE, start_date, status=timeline.PENDING, plan=plan, quantity=quantity,
            reason=reason, changes={"account": account.number, "plan": plan.code, "quantity": quantity})
    if activate:
        _transition(actor, subscription, "activate", start_date, reason)
    for ident in identifiers_:
        attach_identifier(actor, subscription, **ident)
    return subscription


def _transition(actor: Actor, subscription: Subscription, transition: str, effective_date: date, reason: str):
    target = timeline.next_status(subscription.status, transition, subscription.number)
    if effective_date < subscription.start_date:
        raise ValidationFailed(
            f"effective_date: {effective_date} is before the subscription starts ({subscription.start_date})",
            field="effective_date",
        )
    changes = {"status": [subscription.status, target]}
    update = ["status"]
    if target == timeline.TERMINATED:
        subscription.end_date = effective_date
        update.append("end_date")
        changes["identifiers_ended"] = _close_identifiers(subscription, start_of_day(effective_date))
    _append(actor, subscription, transition, effective_date, status=target, plan=subscription.plan,
            quantity=subscription.quantity, reason=reason, changes=changes)
    subscription.status = target
    subscription.save(update_fields=update)
    if transition == "activate":
        signals.subscription_activated.send(
            Subscription, subscription=subscription, effective_date=effective_date, actor=actor,
            first_for_customer=_first_activation(subscription),
        )
    return subscription


def _first_activation(subscription: Subscription) -> bool:
    return not SubscriptionChange.objects.filter(
        kind=Kind.ACTIVATE, subscription__account__customer_id=subscription.account.customer_id
    ).exclude(subscription=subscription).exists()


@transaction.atomic
def transition(actor: Actor, subscription: Subscription, name: str, effective_date: date, reason: str = ""):
    """activate | suspend | resume | terminate, effective from `effective_date`."""
    actor.require_write()
    return _transition(actor, _lock(subscription), name, effective_date, reason)


def _check_changeable(subscription: Subscription) -> None:
    if subscription.status not in timeline.CHANGES_ALLOWED_IN:
        raise timeline.IllegalTransition(
            f"subscription {subscription.number} is {subscription.status}; its plan and quantity cannot change",
            field="transition",
        )


@transaction.atomic
def change_plan(actor: Actor, subscription: Subscription, plan: PricePlan, effective_date: date, reason: str = ""):
    actor.require_write()
    subscription = _lock(subscription)
    _check_changeable(subscription)
    if plan.pk == subscription.plan_id:
        raise ValidationFailed(f"plan: the subscription is already on {plan.code}", field="plan")
    _check_plan_for(subscription.account, plan, effective_date)
    old = subscription.plan.code
    _append(actor, subscription, Kind.CHANGE_PLAN, effective_date, status=subscription.status, plan=plan,
            quantity=subscription.quantity, reason=reason, changes={"plan": [old, plan.code]})
    subscription.plan = plan
    subscription.save(update_fields=["plan"])
    return subscription


@transaction.atomic
def change_quantity(actor: Actor, subscription: Subscription, quantity, effective_date: date, reason: str = ""):
    actor.require_write()
    subscription = _lock(subscription)
    _check_changeable(subscription)
    quantity = _quantity(quantity)
    old = subscription.quantity
    _append(actor, subscription, Kind.CHANGE_QUANTITY, effective_date, status=subscription.status,
            plan=subscription.plan, quantity=quantity, reason=reason, changes={"quantity": [old, quantity]})
    subscription.quantity = quantity
    subscription.save(update_fields=["quantity"])
    return subscription


def _aware(moment: datetime | None, field: str) -> datetime | None:
    """A time without a zone is read in the tenant's time zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(current_tenant().timezone))


def _check_free(kind: str, value: str, valid_from: datetime, valid_to: datetime | None, exclude_pk=None) -> None:
    """Refuse when another validity of this identifier overlaps [valid_from, valid_to)."""
    locks.serialise("identifier", kind, value)
    others = UsageIdentifier.objects.filter(kind=kind, value=value).exclude(pk=exclude_pk).select_related("subscription")
    for other in others:
        if identifiers.overlaps(valid_from, valid_to, other.valid_from, other.valid_to):
            raise Conflict(
                f"value: {kind} {value} is already held by subscription {other.subscription.number} "
                f"from {other.valid_from:%Y-%m-%d %H:%M} to {other.valid_to or 'open end'}",
                field="value",
                code="identifier_in_use",
            )


def _check_within_service(subscription: Subscription, valid_to: datetime | None) -> None:
    if subscription.status != timeline.TERMINATED:
        return
    service_end = start_of_day(subscription.end_date)
    if valid_to is None or valid_to > service_end:
        raise timeline.IllegalTransition(
            f"subscription {subscription.number} is terminated from {subscription.end_date}; "
            "its identifiers cannot outlast that",
            field="valid_to",
        )


@transaction.atomic
def attach_identifier(actor: Actor, subscription: Subscription, *, kind: str, value: str,
                      valid_from: datetime | None = None, valid_to: datetime | None = None, reason: str = ""):
    actor.require_write()
    subscription = _lock(subscription)
    value = identifiers.normalise(kind, value)
    valid_from = _aware(valid_from, "valid_from") or start_of_day(subscription.start_date)
    valid_to = _aware(valid_to, "valid_to")
    if valid_to is not None and valid_to <= valid_from:
        raise ValidationFailed("valid_to: must be after valid_from", field="valid_to")
    if subscription.status == timeline.TERMINATED:
        raise timeline.IllegalTransition(f"subscription {subscription.number} is terminated", field="subscription")
    _check_free(kind, value, valid_from, valid_to)
    identifier = UsageIdentifier.objects.create(
        tenant_id=subscription.tenant_id, subscription=subscription, kind=kind, value=value,
        valid_from=valid_from, valid_to=valid_to,
    )
    audit.record(actor, "subscription.identifier_attach", subscription,
                 {"kind": kind, "value": value, "valid_from": valid_from, "valid_to": valid_to}, reason)
    return identifier


@transaction.atomic
def end_identifier(actor: Actor, identifier: UsageIdentifier, valid_to: datetime, reason: str = ""):
    """Set (earlier or later) the end of an identifier's validity; the rules of attach still hold."""
    actor.require_write()
    subscription = _lock(identifier.subscription)
    identifier = UsageIdentifier.objects.get(pk=identifier.pk)
    valid_to = _aware(valid_to, "valid_to")
    if valid_to <= identifier.valid_from:
        raise ValidationFailed("valid_to: must be after valid_from", field="valid_to")
    _check_within_service(subscription, valid_to)
    _check_free(identifier.kind, identifier.value, identifier.valid_from, valid_to, exclude_pk=identifier.pk)
    old = identifier.valid_to
    identifier.valid_to = valid_to
    identifier.save(update_fields=["valid_to"])
    audit.record(actor, "subscription.identifier_end", subscription,
                 {"kind": identifier.kind, "value": identifier.value, "valid_to": [old, valid_to]}, reason)
    return identifier


def _close_identifiers(subscription: Subscription, at: datetime) -> list[dict]:
    """End every identifier still valid at `at`; one that would only start later is removed.
    Returns what was ended, for the audit row."""
    ended = []
    for identifier in subscription.identifiers.all():
        if identifier.valid_to is None or identifier.valid_to > at:
            detail = {"kind": identifier.kind, "value": identifier.value, "valid_to": [identifier.valid_to, at]}
            if identifier.valid_from >= at:
                identifier.delete()  # it never came into force
                detail["removed"] = True
            else:
                identifier.valid_to = at
                identifier.save(update_fields=["valid_to"])
            ended.append(detail)
    return ended


def subscription_holding(kind: str, value: str, at: datetime) -> Subscription | None:
    """The subscription that held identifier `value` at instant `at` (for mediation)."""
    value = identifiers.normalise(kind, value)
    for ident in UsageIdentifier.objects.filter(kind=kind, value=value, valid_from__lte=at).select_related(
        "subscription"
    ):
        if ident.valid_to is None or at < ident.valid_to:
            return ident.subscription
    return None
