"""REST routes: an account's pockets and ledger, top-ups, adjustments, and the spend check."""
from datetime import datetime
from decimal import Decimal

from ninja import Field, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS
from obol.balances import services
from obol.balances.models import LedgerEntry, Pocket
from obol.core.money import Amount
from obol.core.rounding import RoundingPlace, convert_rounded
from obol.customers.models import BillingAccount

router = Router(tags=["balances"])


class PocketOut(Schema):
    id: int
    label: str
    source: str
    unit: str = Field(..., description="The unit the balance is counted in")
    balance: Decimal
    display_unit: str
    display_balance: Decimal = Field(..., description="The balance in display_unit (6 decimals at most)")
    granted: Decimal
    priority: int
    valid_from: datetime
    valid_until: datetime | None
    services: list[str]
    destination_groups: list[str]
    subscription_id: int | None
    expired: bool

    @staticmethod
    def resolve_display_balance(pocket: Pocket) -> Decimal:
        return convert_rounded(Amount(pocket.balance, pocket.unit), pocket.display_unit, RoundingPlace.DISPLAY).value

    @staticmethod
    def resolve_expired(pocket: Pocket) -> bool:
        from obol.core import clock

        return pocket.valid_until is not None and pocket.valid_until <= clock.now()


class EntryOut(Schema):
    id: int
    at: datetime
    kind: str
    amount: Decimal
    balance_after: Decimal
    service: str
    reason: str
    reference: str
    actor_label: str


class TopUpIn(Schema):
    amount: Decimal = Field(..., description="Positive, in `currency`")
    currency: str | None = Field(None, description="Default: the account's currency")
    reference: str = Field(..., min_length=1, max_length=180, description="The payment's reference")
    reason: str = ""


class AdjustmentIn(Schema):
    amount: Decimal = Field(..., description="Signed, in `unit`")
    unit: str | None = Field(None, description="Default: the pocket's display unit")
    reason: str = Field(..., min_length=1)
    reference: str = ""


class AuthorizeIn(Schema):
    quantity: Decimal
    unit: str = Field(..., description="second, minute, sms, megabyte, EUR, ...")
    service: str | None = None
    destination_group: str | None = None
    price: Decimal | None = Field(None, description="Account currency per 1 `price_unit`, for what pockets do not cover")
    price_unit: str | None = Field(None, description="Default: `unit`")
    at: datetime | None = None


class TakeOut(Schema):
    pocket_id: int | None
    amount: Decimal


class PlanOut(Schema):
    allowed: bool
    code: str
    message: str
    covered: Decimal
    charged: Decimal
    accrued: Decimal
    takes: list[TakeOut]


def _account(account_id: int) -> BillingAccount:
    return BillingAccount.objects.get_or_404("account", pk=account_id)


def _pocket(account_id: int, pocket_id: int) -> Pocket:
    return Pocket.objects.get_or_404("pocket", pk=pocket_id, account=_account(account_id))


@router.get("/accounts/{account_id}/pockets", response={200: list[PocketOut], **ERRORS},
            summary="The account's pockets (balances in any unit)")
def list_pockets(request, account_id: int, include_empty: bool = False):
    pockets = Pocket.objects.filter(account=_account(account_id))
    if not include_empty:
        pockets = pockets.exclude(balance=Decimal(0))
    return list(pockets)


@router.get("/accounts/{account_id}/pockets/{pocket_id}/entries", response=list[EntryOut],
            summary="A pocket's ledger, oldest first")
@paginate(LimitOffsetPagination)
def list_entries(request, account_id: int, pocket_id: int):
    return LedgerEntry.objects.filter(pocket=_pocket(account_id, pocket_id)).order_by("id")


@router.post("/accounts/{account_id}/top-ups", response={201: list[EntryOut], **ERRORS},
             summary="Credit money paid in (a prepaid overdraft is repaid first)")
def top_up(request, account_id: int, payload: TopUpIn):
    account = _account(account_id)
    amount = Amount(payload.amount, payload.currency or account.currency)
    return Status(201, services.top_up(request.actor, account, amount, reference=payload.reference,
                                       reason=payload.reason))


@router.post("/accounts/{account_id}/pockets/{pocket_id}/adjustments", response={201: EntryOut, **ERRORS},
             summary="Correct a pocket (reason required, audited)")
@idempotent(EntryOut)
def adjust(request, account_id: int, pocket_id: int, payload: AdjustmentIn):
    pocket = _pocket(account_id, pocket_id)
    amount = services.storage(Amount(payload.amount, payload.unit or pocket.display_unit))
    if amount.unit.code != pocket.unit:
        from obol.core.errors import ValidationFailed

        raise ValidationFailed(f"unit: pocket {pocket.pk} counts {pocket.unit}, not {payload.unit}", field="unit")
    return services.adjust(request.actor, pocket, amount.value, reason=payload.reason, reference=payload.reference)


@router.post("/accounts/{account_id}/authorize", response={200: PlanOut, **ERRORS},
             summary="Could the account spend this now, and from which pockets? (books nothing)")
def authorize(request, account_id: int, payload: AuthorizeIn):
    account = _account(account_id)
    price = Amount(payload.price, account.currency) if payload.price is not None else None
    plan = services.authorize(account, Amount(payload.quantity, payload.unit), service=payload.service,
                              destination_group=payload.destination_group, price=price,
                              price_unit=payload.price_unit, at=payload.at)
    return {"allowed": plan.allowed, "code": plan.code, "message": plan.message, "covered": plan.covered,
            "charged": plan.charged, "accrued": plan.accrued,
            "takes": [{"pocket_id": t.pocket_id or None, "amount": t.amount} for t in plan.takes]}
