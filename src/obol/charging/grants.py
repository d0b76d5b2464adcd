"""How much of a service a session may use and what its usage costs: pure (no database, no clock).

A session is priced as one usage record: the quantity used since its start, allowance units first
(the subscription's unit pockets for the service, in the pocket core's order), the rest `charged`
and priced by the rate's terms (`usage.rating.pricing.billed_one` / `price_one`: the batch
engine's rules, increments and rounding), then paid as `balances.engine` orders money: money
pockets (prepaid, hybrid), then the unbilled-usage pocket (ACCRUAL) as far as the account's mode
and credit limit allow (a prepaid overdraft down to minus the credit limit; hybrid and postpaid up
to the limit). What nothing covers is the `shortfall`.

`grant` finds the most units, up to the request, whose total cost the funds cover without
shortfall (the cost is a step function of the quantity: a binary search over it). `cost(...,
strict=False)` is the commit of what was really used: hybrid and postpaid usage then accrues
whatever the limit (it happened), and a prepaid shortfall is recorded, not refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from obol.balances.engine import (
    HYBRID,
    PREPAID,
    AccountState,
    PocketState,
    SpendRequest,
    Take,
    accrual_refusal,
    take_in_order,
)
from obol.catalog.rates import from_micros
from obol.core.money import EXACT
from obol.usage.rating.pricing import billed_one, price_one
from obol.usage.rating.single import Terms

ACCRUAL = 0  # the pocket id standing for the account's unbilled-usage pocket (opened when first used)


@dataclass(frozen=True)
class Funds:
    """What one session may draw on: balances net of what the account's other open sessions hold."""

    account: AccountState
    units: tuple[PocketState, ...]  # the subscription's allowance pockets for the service (storage units)
    money: tuple[PocketState, ...]  # the account's money pockets in its currency
    owed: Decimal = Decimal(0)  # unbilled usage (positive) plus what other sessions hold of it


@dataclass(frozen=True)
class Cost:
    quantity: int
    included: int  # units paid by allowance pockets
    charged: int  # units priced
    billed: int  # charged after increments / rounding up
    price_micros: int
    takes: tuple[Take, ...]  # (pocket id or ACCRUAL, amount in the pocket's unit)
    shortfall: Decimal  # money nothing covers

    @property
    def price(self) -> Decimal:
        return from_micros(self.price_micros)

    def holds(self) -> dict[str, str]:
        """The takes as a session's reservation: {pocket id: amount}."""
        held: dict[str, Decimal] = {}
        for take in self.takes:
            held[str(take.pocket_id)] = EXACT.add(held.get(str(take.pocket_id), Decimal(0)), take.amount)
        return {pocket: str(amount) for pocket, amount in held.items()}


@dataclass(frozen=True)
class PocketRow:
    """A pocket as stored (whichever path read it)."""

    id: int
    unit: str
    balance: Decimal
    priority: int
    valid_from: datetime | None
    valid_until: datetime | None
    services: tuple[str, ...]
    destination_groups: tuple[str, ...]
    is_accrual: bool
    subscription_id: int | None


def held(holds: list[dict]) -> dict[str, Decimal]:
    """What sessions hold per pocket, summed from their `holds`."""
    total: dict[str, Decimal] = {}
    for one in holds:
        for pocket, amount in one.items():
            total[pocket] = EXACT.add(total.get(pocket, Decimal(0)), Decimal(amount))
    return total


def funds(account: AccountState, pockets: list[PocketRow], held_by_others: dict[str, Decimal], *,
          subscription_id: int, service: str, is_money_unit) -> Funds:
    """What a session may draw on: the account's money pockets in its currency and, as batch rating
    takes allowances, the subscription's unit pockets naming the service; each less what the
    account's other open sessions hold; `owed` the unbilled usage plus what they hold of it."""
    units, money = [], []
    owed = held_by_others.get(str(ACCRUAL), Decimal(0))
    for p in pockets:
        holding = held_by_others.get(str(p.id), Decimal(0))
        if p.is_accrual:
            owed = EXACT.add(owed, EXACT.subtract(holding, p.balance))
            continue
        state = PocketState(id=p.id, unit=p.unit, balance=EXACT.subtract(p.balance, holding), priority=p.priority,
                            valid_from=p.valid_from, valid_until=p.valid_until, services=p.services,
                            destination_groups=p.destination_groups)
        if p.unit == account.currency:
            money.append(state)
        elif p.subscription_id == subscription_id and service in p.services and not is_money_unit(p.unit):
            units.append(state)
    return Funds(account, tuple(units), tuple(money), owed)


def allowance_order(pocket: PocketState):
    """Batch rating's order of allowance pockets (`usage.rating.allowances`): pockets restricted to
    destination groups first, then lower priority, earliest end (none last), id. (Allowance pockets
    always name services, so the pocket core's "restricted" would not tell them apart.)"""
    until = pocket.valid_until.timestamp() if pocket.valid_until else float("inf")
    return (0 if pocket.destination_groups else 1, pocket.priority, until, pocket.id)


def cost(terms: Terms, quantity: int, funds: Funds, *, at: datetime, service: str, rule: str,
         strict: bool = True) -> Cost:
    request = SpendRequest(quantity=Decimal(quantity), unit="", at=at, service=service,
                           destination_group=terms.destination_group)
    takes: list[Take] = []
    charged = int(take_in_order(funds.units, request, Decimal(quantity), takes, key=allowance_order)) \
        if quantity > 0 else 0
    billed = billed_one(terms.kind, charged, terms.first_increment_s, terms.next_increment_s, terms.rounding_factor)
    micros = price_one(charged, billed, terms.price_micros, terms.factor, terms.minimum_charge_micros,
                       terms.connection_fee_micros, rule)
    money, shortfall = from_micros(micros), Decimal(0)
    account = funds.account
    if money > 0 and account.mode in (PREPAID, HYBRID):
        money = take_in_order(funds.money, request, money, takes)
    if money > 0:
        if accrual_refusal(account, funds.owed, money) is None or (not strict and account.mode != PREPAID):
            takes.append(Take(ACCRUAL, money))
        elif account.mode == PREPAID:  # overdraft as far as the credit limit reaches, the rest is short
            room = max(EXACT.subtract(account.credit_limit or Decimal(0), funds.owed), Decimal(0))
            if room > 0:
                takes.append(Take(ACCRUAL, room))
            shortfall = EXACT.subtract(money, room)
        else:
            shortfall = money
    return Cost(quantity, quantity - charged, charged, billed, micros, tuple(takes), shortfall)


def grant(terms: Terms, used: int, requested: int, funds: Funds, *, at: datetime, service: str,
          rule: str) -> tuple[int, Cost]:
    """(units granted, the cost of used + granted: what the session holds). 0 when not even one
    more unit is covered; then the session holds what covers its use so far."""

    def covered(extra: int) -> Cost | None:
        found = cost(terms, used + extra, funds, at=at, service=service, rule=rule)
        return found if found.shortfall == 0 else None

    whole = covered(requested)
    if whole is not None:
        return requested, whole
    low = covered(0)
    if low is None or requested <= 0:
        return 0, low or cost(terms, used, funds, at=at, service=service, rule=rule, strict=False)
    lo, hi = 0, requested  # covered(lo) holds, covered(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = covered(mid)
        if found is not None:
            lo, low = mid, found
        else:
            hi = mid
    return lo, low


def money_left(pockets: list[PocketRow], currency: str) -> Decimal:
    """Money the account holds in its money pockets (the unbilled-usage pocket aside)."""
    return sum((p.balance for p in pockets if p.unit == currency and not p.is_accrual), Decimal(0))


def money_after(pockets: list[PocketRow], currency: str, takes: tuple[Take, ...]) -> Decimal:
    """`money_left` once `takes` are booked."""
    money = {p.id for p in pockets if p.unit == currency and not p.is_accrual}
    taken = sum((t.amount for t in takes if t.pocket_id in money), Decimal(0))
    return EXACT.subtract(money_left(pockets, currency), taken)


def low_balance(before: Decimal, after: Decimal, threshold: Decimal | None) -> bool:
    """Did a commit take the money below the threshold? Once when crossing, not at every call below."""
    return threshold is not None and after < threshold <= before
