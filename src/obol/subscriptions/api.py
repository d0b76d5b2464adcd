"""REST routes for subscriptions: create, list, get, plan/quantity changes, transitions, identifiers."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from typing import Literal

from django.db import transaction
from django.db.models import Q
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS, AuditEventOut
from obol.catalog.models import PricePlan
from obol.core import audit
from obol.core.errors import ValidationFailed
from obol.customers.models import BillingAccount
from obol.subscriptions import identifiers, services
from obol.subscriptions.models import Subscription, UsageIdentifier

router = Router(tags=["subscriptions"])

IdentifierKind = Literal["msisdn", "imsi", "username", "external_id"]


class IdentifierIn(Schema):
    kind: IdentifierKind
    value: str
    valid_from: datetime | None = Field(None, description="Default: the subscription's start")
    valid_to: datetime | None = Field(None, description="Exclusive end; empty: open")


class IdentifierOut(Schema):
    id: int
    kind: str
    value: str
    valid_from: datetime
    valid_to: datetime | None


class ChangeOut(Schema):
    seq: int
    kind: str
    effective_date: date
    status: str
    plan: str = Field(..., alias="plan.code")
    quantity: Decimal
    reason: str


class SubscriptionIn(Schema):
    account_id: int
    plan: str = Field(..., description="Price plan code")
    quantity: Decimal = Decimal(1)
    start_date: date
    activate: bool = Field(True, description="Active from the start date; false leaves it pending")
    number: str | None = None
    identifiers: list[IdentifierIn] = []
    reason: str = ""


class SubscriptionOut(Schema):
    id: int
    number: str
    account_id: int
    plan: str = Field(..., alias="plan.code")
    quantity: Decimal
    status: str = Field(..., description="State after the last recorded change (changes may be future-dated)")
    start_date: date
    end_date: date | None
    identifiers: list[IdentifierOut] = Field(..., alias="identifiers.all")
    timeline: list[ChangeOut] = Field(..., alias="changes.all")


class SubscriptionPatch(Schema):
    plan: str | None = Field(None, description="New plan code")
    quantity: Decimal | None = None
    effective_date: date
    reason: str = ""


class TransitionIn(Schema):
    effective_date: date
    reason: str = ""


class EndIdentifierIn(Schema):
    valid_to: datetime
    reason: str = ""


class SubscriptionFilter(FilterSchema):
    account_id: int | None = None
    status: Literal["pending", "active", "suspended", "terminated"] | None = None
    plan: Annotated[str | None, FilterLookup("plan__code")] = None
    identifier: str | None = Field(None, description="MSISDN (any format), IMSI, username, external id")

    def filter_identifier(self, value: str | None) -> Q:
        if not value:
            return Q()
        values = {value.strip(), value.strip().lower()}
        try:
            values.add(identifiers.normalise("msisdn", value))
        except ValidationFailed:
            pass
        return Q(identifiers__value__in=values)


def _plan(code: str) -> PricePlan:
    return PricePlan.objects.get_or_404(f"plan {code!r}", code=code)


def _subscription(subscription_id: int) -> Subscription:
    return Subscription.objects.select_related("plan", "account").get_or_404("subscription", pk=subscription_id)


@router.get("/subscriptions", response=list[SubscriptionOut], summary="List subscriptions")
@paginate(LimitOffsetPagination)
def list_subscriptions(request, filters: Query[SubscriptionFilter]):
    queryset = Subscription.objects.select_related("plan").prefetch_related("identifiers", "changes__plan")
    return filters.filter(queryset).distinct()


@router.post("/subscriptions", response={201: SubscriptionOut, **ERRORS}, summary="Subscribe an account to a plan")
@idempotent(SubscriptionOut)
def create_subscription(request, payload: SubscriptionIn):
    account = BillingAccount.objects.get_or_404("account", pk=payload.account_id)
    return services.subscribe(
        request.actor, account, _plan(payload.plan), start_date=payload.start_date, quantity=payload.quantity,
        activate=payload.activate, number=payload.number, reason=payload.reason,
        identifiers_=[i.dict() for i in payload.identifiers],
    )


@router.get("/subscriptions/{subscription_id}", response={200: SubscriptionOut, **ERRORS},
            summary="Get a subscription with its timeline")
def get_subscription(request, subscription_id: int):
    return _subscription(subscription_id)


@router.patch("/subscriptions/{subscription_id}", response={200: SubscriptionOut, **ERRORS},
              summary="Change plan and/or quantity from a date")
def update_subscription(request, subscription_id: int, payload: SubscriptionPatch):
    subscription = _subscription(subscription_id)
    if payload.plan is None and payload.quantity is None:
        raise ValidationFailed("give a new plan, a new quantity or both", field="plan")
    with transaction.atomic():  # both changes or neither
        _change(request.actor, subscription, payload)
    return _subscription(subscription.pk)


def _change(actor, subscription, payload):
    if payload.plan is not None:
        subscription = services.change_plan(actor, subscription, _plan(payload.plan),
                                            payload.effective_date, payload.reason)
    if payload.quantity is not None:
        services.change_quantity(actor, subscription, payload.quantity, payload.effective_date, payload.reason)


def _transition_route(transition: str):
    @router.post(f"/subscriptions/{{subscription_id}}/{transition}", response={200: SubscriptionOut, **ERRORS},
                 summary=f"{transition.capitalize()} the subscription from a date",
                 operation_id=f"{transition}_subscription")
    @idempotent(SubscriptionOut, status=200)
    def operation(request, subscription_id: int, payload: TransitionIn):
        subscription = services.transition(request.actor, _subscription(subscription_id), transition,
                                           payload.effective_date, payload.reason)
        return _subscription(subscription.pk)

    return operation


for _name in ("activate", "suspend", "resume", "terminate"):
    _transition_route(_name)


@router.get("/subscriptions/{subscription_id}/history", response={200: list[AuditEventOut], **ERRORS},
            summary="Audit trail of a subscription")
def subscription_history(request, subscription_id: int):
    return list(audit.history(_subscription(subscription_id)))


@router.post("/subscriptions/{subscription_id}/identifiers", response={201: IdentifierOut, **ERRORS},
             summary="Attach a usage identifier for a validity period")
@idempotent(IdentifierOut)
def attach_identifier(request, subscription_id: int, payload: IdentifierIn):
    return services.attach_identifier(request.actor, _subscription(subscription_id), **payload.dict())


@router.post("/subscriptions/{subscription_id}/identifiers/{identifier_id}/end",
             response={200: IdentifierOut, **ERRORS}, summary="End a usage identifier's validity")
def end_identifier(request, subscription_id: int, identifier_id: int, payload: EndIdentifierIn):
    identifier = UsageIdentifier.objects.get_or_404(
        "identifier", pk=identifier_id, subscription=_subscription(subscription_id)
    )
    return services.end_identifier(request.actor, identifier, payload.valid_to, payload.reason)
