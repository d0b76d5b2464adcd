"""REST routes: promotions on offer, and the promotions applied to a subscription."""

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from ninja import Field, FilterSchema, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.balances import promotions
from obol.balances.models import Promotion, PromotionApplication
from obol.subscriptions.models import Subscription

router = Router(tags=["balances"])


class PromotionOut(Schema):
    id: int
    code: str
    name: str
    description: str
    kind: str
    trigger: str
    plan: str | None = Field(None, alias="plan.code")
    valid_from: datetime
    valid_until: datetime | None
    active: bool
    new_customers_only: bool
    reseller: str | None = Field(None, alias="reseller.code")
    max_redemptions: int | None
    grant_amount: Decimal | None
    grant_unit: str
    multiply_allowance_of: str
    allowance_factor: Decimal | None
    grant_services: list[str]
    grant_periods: int
    pocket_validity_days: int | None
    discount_type: str
    discount_percent: Decimal | None
    discount_amount: Decimal | None
    discount_currency: str
    discount_periods: int
    charge_kinds: list[str]
    charge_codes: list[str]


class GrantedPocketOut(Schema):
    pocket_id: int = Field(..., alias="id")
    label: str
    unit: str
    display_unit: str
    granted: Decimal = Field(..., description="In `unit` (seconds and bytes for time and data)")
    balance: Decimal
    valid_from: datetime
    valid_until: datetime | None
    period_start: date | None
    period_end: date | None


class ApplicationOut(Schema):
    id: int
    promotion: str = Field(..., alias="promotion.code")
    promotion_name: str = Field(..., alias="promotion.name")
    kind: str = Field(..., alias="promotion.kind")
    subscription_id: int
    account_id: int
    applied_at: datetime
    start_date: date
    end_date: date = Field(..., description="Exclusive")
    state: str
    grants_given: int
    pockets: list[GrantedPocketOut] = []

    @staticmethod
    def resolve_pockets(application: PromotionApplication):
        return list(promotions.granted_pockets(application))


class ApplyCodeIn(Schema):
    code: str = Field(..., min_length=1, max_length=40)


class PromotionFilter(FilterSchema):
    kind: Literal["grant", "discount"] | None = None
    trigger: Literal["plan", "code"] | None = None
    active: bool | None = None


def _subscription(subscription_id: int) -> Subscription:
    return Subscription.objects.get_or_404("subscription", pk=subscription_id)


@router.get("/promotions", response=list[PromotionOut], summary="List promotions")
@paginate(LimitOffsetPagination)
def list_promotions(request, filters: Query[PromotionFilter]):
    return filters.filter(Promotion.objects.select_related("plan", "reseller"))


@router.post(
    "/subscriptions/{subscription_id}/promotions",
    response={201: ApplicationOut, **ERRORS},
    summary="Apply a promo code to a subscription",
)
@idempotent(ApplicationOut)
def apply_code(request, subscription_id: int, payload: ApplyCodeIn):
    return promotions.apply_code(request.actor, _subscription(subscription_id), payload.code)


@router.get(
    "/subscriptions/{subscription_id}/promotions",
    response={200: list[ApplicationOut], **ERRORS},
    summary="Promotions applied to a subscription",
)
def subscription_promotions(request, subscription_id: int):
    subscription = _subscription(subscription_id)
    return list(PromotionApplication.objects.filter(subscription=subscription).select_related("promotion"))
