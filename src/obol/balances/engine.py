"""Which pockets pay for a spend, pure: data in, a plan out; no database, no clock.

`plan_spend(pockets, account, request)` answers "can this account spend X of unit U on service S
at time T, and from which pockets". The order is the same for every mode:

1. unit pockets (allowances, bundles, items: anything in the request's unit or its dimension)
   that apply (valid at T, restriction matching S and the destination group), ordered by
   restriction match (restricted pockets first), priority (lower first), earliest expiry, age;
2. what units are left is priced (`price` per unit, rounded at the rating place) and paid
   - prepaid: from money pockets in the account's currency, then as overdraft down to minus the
     credit limit (none when no limit is set);
   - hybrid: from money pockets, then as postpaid accrual;
   - postpaid: as postpaid accrual (money pockets settle invoices, not usage);
   postpaid accrual is capped by the credit limit: unbilled usage + unpaid invoices + this spend.
A request in money (unit = the account's currency) starts at step 2. A request in units with no
price can only be paid from unit pockets.

Amounts of time and data are in their dimension's base unit (seconds, bytes) here: the caller
converts, so every step is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal

from obol.core.money import EXACT, Amount, display
from obol.core.rounding import RoundingPlace, RoundingRule, round_amount

PREPAID, POSTPAID, HYBRID = "prepaid", "postpaid", "hybrid"
# units x price / units-per-price may repeat (a per-minute price for seconds): 60 digits, then the
# one rounding at the rating place.
_PRICING = Context(prec=60)


@dataclass(frozen=True)
class PocketState:
    id: int
    unit: str
    balance: Decimal
    priority: int = 100
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    services: tuple[str, ...] = ()
    destination_groups: tuple[str, ...] = ()
    is_accrual: bool = False

    def applies_to(self, request: SpendRequest) -> bool:
        if self.valid_from is not None and request.at < self.valid_from:
            return False
        if self.valid_until is not None and request.at >= self.valid_until:
            return False
        if self.services and request.service not in self.services:
            return False
        return not (self.destination_groups and request.destination_group not in self.destination_groups)

    def order_key(self):
        restricted = 0 if (self.services or self.destination_groups) else 1
        until = self.valid_until.timestamp() if self.valid_until else float("inf")
        return (restricted, self.priority, until, self.id)


@dataclass(frozen=True)
class AccountState:
    mode: str
    currency: str
    credit_limit: Decimal | None = None
    unpaid_invoices: Decimal = Decimal(0)
    rounding: str = RoundingRule.HALF_UP
    closed: bool = False


@dataclass(frozen=True)
class SpendRequest:
    quantity: Decimal
    unit: str
    at: datetime
    service: str | None = None
    destination_group: str | None = None
    price: Decimal | None = None  # account currency per `price_per` units of `unit`; None: units only
    price_per: Decimal = Decimal(1)  # e.g. 60 for a per-minute price of a request in seconds


@dataclass(frozen=True)
class Take:
    pocket_id: int
    amount: Decimal  # positive, in the pocket's unit; the accrual pocket's take makes it more negative


@dataclass(frozen=True)
class SpendPlan:
    allowed: bool
    takes: tuple[Take, ...] = ()
    covered: Decimal = Decimal(0)  # units paid from unit pockets
    charged: Decimal = Decimal(0)  # money paid from money pockets
    accrued: Decimal = Decimal(0)  # money added to postpaid accrual (or prepaid overdraft)
    code: str = "ok"
    message: str = ""
    details: dict = field(default_factory=dict)


def take_in_order(pockets, request, needed: Decimal, takes: list[Take], key=None) -> Decimal:
    """Take `needed` from the pockets that apply, in `key` order (default `PocketState.order_key`)."""
    for pocket in sorted(pockets, key=key or PocketState.order_key):
        if needed <= 0:
            break
        if pocket.balance <= 0 or not pocket.applies_to(request):
            continue
        amount = min(pocket.balance, needed)
        takes.append(Take(pocket.id, amount))
        needed = EXACT.subtract(needed, amount)
    return needed


def plan_spend(pockets: list[PocketState], account: AccountState, request: SpendRequest) -> SpendPlan:
    if request.quantity <= 0:
        return SpendPlan(False, code="invalid_quantity", message=f"quantity must be positive, not {request.quantity}")
    if account.closed:
        return SpendPlan(False, code="account_closed", message="the account is closed")
    takes: list[Take] = []
    unit_pockets = [p for p in pockets if p.unit == request.unit and not p.is_accrual]
    if request.unit == account.currency:
        money_needed = request.quantity
        covered = Decimal(0)
    else:
        left = take_in_order(unit_pockets, request, request.quantity, takes)
        covered = EXACT.subtract(request.quantity, left)
        if left == 0:
            return SpendPlan(True, tuple(takes), covered=covered)
        if request.price is None:
            return SpendPlan(False, code="insufficient_units",
                             message=f"{left} {request.unit} more than the pockets hold ({covered} available)",
                             details={"available": covered, "missing": left})
        cost = _PRICING.divide(_PRICING.multiply(left, request.price), request.price_per)
        money_needed = round_amount(Amount(cost, account.currency), RoundingPlace.RATING, account.rounding).value

    charged = Decimal(0)
    if account.mode in (PREPAID, HYBRID) and money_needed > 0:
        money_pockets = [p for p in pockets if p.unit == account.currency and not p.is_accrual]
        left = take_in_order(money_pockets, request, money_needed, takes)
        charged = EXACT.subtract(money_needed, left)
        money_needed = left
    if money_needed == 0:
        return SpendPlan(True, tuple(takes), covered=covered, charged=charged)

    accrual = next((p for p in pockets if p.is_accrual and p.unit == account.currency), None)
    owed = -accrual.balance if accrual is not None else Decimal(0)
    refusal = _accrual_refusal(account, owed, money_needed)
    if refusal is not None:
        return refusal
    takes.append(Take(accrual.id if accrual is not None else 0, money_needed))
    return SpendPlan(True, tuple(takes), covered=covered, charged=charged, accrued=money_needed)


def accrual_refusal(account: AccountState, owed: Decimal, needed: Decimal) -> SpendPlan | None:
    """Would owing `needed` more on top of `owed` break the account's mode and credit limit?"""
    return _accrual_refusal(account, owed, needed)


def _accrual_refusal(account: AccountState, owed: Decimal, needed: Decimal) -> SpendPlan | None:
    currency, limit = account.currency, account.credit_limit
    if account.mode == PREPAID:
        available = EXACT.subtract(limit or Decimal(0), owed)
        if needed <= available:
            return None
        return SpendPlan(False, code="insufficient_credit",
                         message=f"not enough credit: {display(needed, currency)} more is needed, "
                                 f"{display(max(available, Decimal(0)), currency)} of credit is left",
                         details={"needed": needed, "available": max(available, Decimal(0))})
    if limit is None:
        return None
    exposure = EXACT.add(EXACT.add(owed, account.unpaid_invoices), needed)
    if exposure <= limit:
        return None
    return SpendPlan(False, code="credit_limit_exceeded",
                     message=f"credit limit {display(limit, currency)} would be exceeded: "
                             f"{display(owed, currency)} unbilled + {display(account.unpaid_invoices, currency)} "
                             f"unpaid invoices + {display(needed, currency)} = {display(exposure, currency)}",
                     details={"credit_limit": limit, "unbilled": owed, "unpaid_invoices": account.unpaid_invoices,
                              "needed": needed})
