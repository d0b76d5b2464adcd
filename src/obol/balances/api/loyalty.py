"""REST routes: loyalty rewards, redeeming points, an account's points summary."""
from datetime import datetime
from decimal import Decimal

from ninja import Field, Router, Schema

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.balances import loyalty
from obol.balances.models import LoyaltyReward
from obol.customers.models import BillingAccount

router = Router(tags=["balances"])


class RewardOut(Schema):
    code: str
    name: str
    cost: Decimal = Field(..., description="Points")
    grant_value: Decimal
    grant_unit: str
    validity_days: int | None
    services: list[str]


class RedeemIn(Schema):
    reward: str = Field(..., description="Reward code")
    reference: str = Field(..., min_length=1, max_length=150,
                           description="Your reference of this redemption: the same reference redeems once")


class GrantedPocketOut(Schema):
    id: int
    unit: str
    display_unit: str
    granted: Decimal = Field(..., description="In `unit` (seconds and bytes for time and data)")
    label: str
    valid_until: datetime | None
    services: list[str]


class RedemptionOut(Schema):
    account_id: int = Field(..., alias="account.pk")
    reward: str = Field(..., alias="reward.code")
    points_spent: Decimal
    points_left: Decimal
    pocket: GrantedPocketOut
    duplicate: bool = Field(..., description="True: this reference had already redeemed; nothing changed")


class SummaryOut(Schema):
    account_id: int
    points: Decimal = Field(..., description="Points held now")
    earned: Decimal = Field(..., description="Points earned by payments")
    redeemed: Decimal = Field(..., description="Points spent on rewards")


@router.get("/loyalty/rewards", response=list[RewardOut], summary="Loyalty rewards on offer")
def list_rewards(request):
    return LoyaltyReward.objects.filter(active=True)


@router.post("/accounts/{account_id}/loyalty/redeem", response={201: RedemptionOut, **ERRORS},
             summary="Redeem points for a reward")
@idempotent(RedemptionOut)
def redeem(request, account_id: int, payload: RedeemIn):
    account = BillingAccount.objects.get_or_404("account", pk=account_id)
    return loyalty.redeem_reward(request.actor, account, payload.reward, reference=payload.reference)


@router.get("/accounts/{account_id}/loyalty", response={200: SummaryOut, **ERRORS},
            summary="An account's loyalty points: held, earned, redeemed")
def loyalty_summary(request, account_id: int):
    return loyalty.summary(BillingAccount.objects.get_or_404("account", pk=account_id))
