"""REST routes: a customer's referral code and the referrals the customer made."""
from datetime import datetime

from ninja import Field, Router, Schema

from obol.api.schemas import ERRORS
from obol.balances.models import Referral
from obol.balances.referrals import referral_code_for
from obol.customers.models import Customer

router = Router(tags=["balances"])


class ReferralCodeOut(Schema):
    customer_id: int
    code: str
    created_at: datetime


class ReferralOut(Schema):
    id: int
    code: str
    referred_id: int
    referred_number: str = Field(..., alias="referred.number")
    referred_name: str = Field(..., alias="referred.name")
    state: str
    qualified_at: datetime | None
    qualified_by: str
    credited_at: datetime | None
    note: str
    created_at: datetime


@router.get("/customers/{customer_id}/referral-code", response={200: ReferralCodeOut, **ERRORS},
            summary="A customer's referral code (made on the first request)")
def get_referral_code(request, customer_id: int):
    return referral_code_for(Customer.objects.get_or_404("customer", pk=customer_id))


@router.get("/customers/{customer_id}/referrals", response={200: list[ReferralOut], **ERRORS},
            summary="The referrals a customer made")
def list_referrals(request, customer_id: int):
    customer = Customer.objects.get_or_404("customer", pk=customer_id)
    made = Referral.objects.filter(referrer=customer).select_related("referred")
    return list(made.order_by("created_at", "id"))
