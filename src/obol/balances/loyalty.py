"""Loyalty use cases: earn points for a payment, redeem points for a reward, and the summary.

Points are pockets in the unit `point` (source loyalty), written only through the pocket core:
a payment's points are one pocket opened with the grant key `loyalty:earn:<account>:<reference>`,
so the same payment earns once; a redemption spends the points (`spend`, no price: too few points
is refused with `insufficient_units`) and opens the reward's pocket with the grant key
`loyalty:redeem:<account>:<reference>`, both in one transaction, so the same reference redeems once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Context, Decimal

from django.db import transaction

from obol.balances.models import LedgerEntry, LoyaltyReward, LoyaltyRule, Pocket, Source
from obol.balances.services import lock_account, open_pocket, spend
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import Conflict, NotFound, ValidationFailed
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.money import EXACT, Amount
from obol.customers.models import BillingAccount

POINT = "point"
REDEEM_PREFIX = "loyalty:redeem:"
REASON = "loyalty reward "  # the reason of a redemption's debit entries, followed by the reward code
MAX_REFERENCE = 150


# points × paid ÷ per_amount may be a repeating decimal; it is rounded down to whole points next.
_RATIO = Context(prec=40)


def points_for(paid: Amount, rule: LoyaltyRule) -> Amount:
    """The points a payment earns under `rule`: paid × points ÷ per_amount, rounded down to whole
    points (1 per 1.00 EUR: 12.99 EUR → 12), at the named rounding place for loyalty points.
    A payment in another currency earns nothing."""
    if paid.unit.code != rule.currency or paid.value <= 0:
        return Amount.zero(POINT)
    earned = _RATIO.divide(_RATIO.multiply(paid.value, rule.points), rule.per_amount)
    return round_amount(Amount(earned, POINT), RoundingPlace.LOYALTY_POINTS)


def _check_reference(reference: str) -> str:
    reference = (reference or "").strip()
    if not reference:
        raise ValidationFailed("reference: required, it makes the operation happen once", field="reference")
    if len(reference) > MAX_REFERENCE:
        raise ValidationFailed(f"reference: at most {MAX_REFERENCE} characters", field="reference")
    return reference


@dataclass(frozen=True)
class Earned:
    points: Amount
    pocket: Pocket | None  # None: nothing earned (no active rule for the currency, or less than a point)
    duplicate: bool = False  # the reference had already earned: nothing new


@transaction.atomic
def earn_for_payment(actor: Actor, account: BillingAccount, paid: Amount, *, reference: str) -> Earned:
    """Credit the points `paid` earns under the tenant's active rule for its currency. The payments
    code calls this once a payment is booked, with the payment's reference; calling it again with
    that reference earns nothing more. No active rule for the currency, or less than one point:
    nothing happens."""
    actor.require_write()
    reference = _check_reference(reference)
    if paid.value < 0:
        raise ValidationFailed("paid: a payment earns points only when it is positive", field="paid")
    account = lock_account(account)
    grant_key = f"loyalty:earn:{account.pk}:{reference}"
    existing = Pocket.objects.filter(grant_key=grant_key).first()
    if existing is not None:
        return Earned(Amount(existing.granted, POINT), existing, duplicate=True)
    rule = LoyaltyRule.objects.filter(active=True, currency=paid.unit.code).first()
    if rule is None:
        return Earned(Amount.zero(POINT), None)
    points = points_for(paid, rule)
    if points.is_zero():
        return Earned(points, None)
    pocket, _ = open_pocket(actor, account, points, source=Source.LOYALTY, label=f"Points for {reference}",
                            grant_key=grant_key, reason=f"loyalty points for {paid}", reference=reference)
    audit.record(actor, "loyalty.earn", account,
                 {"paid": str(paid), "points": points.value, "rule": str(rule), "pocket": pocket.pk},
                 f"payment {reference}")
    return Earned(points, pocket)


@dataclass(frozen=True)
class Redemption:
    reward: LoyaltyReward
    account: BillingAccount
    pocket: Pocket  # what the reward granted
    points_spent: Decimal
    points_left: Decimal
    duplicate: bool = False


def points_balance(account: BillingAccount) -> Decimal:
    """Points the account holds now (every pocket in the point unit)."""
    total = Decimal(0)
    for balance in Pocket.objects.filter(account=account, unit=POINT).values_list("balance", flat=True):
        total = EXACT.add(total, balance)
    return total


def _reward(code: str) -> LoyaltyReward:
    reward = LoyaltyReward.objects.filter(code=code).first()
    if reward is None:
        raise NotFound(f"reward: no loyalty reward {code!r}", field="reward")
    return reward


def _valid_until(reward: LoyaltyReward):
    return clock.now() + timedelta(days=reward.validity_days) if reward.validity_days else None


def _repeat(reward: LoyaltyReward, account: BillingAccount, pocket: Pocket, reference: str) -> Redemption:
    """The redemption already booked under `reference` (refused if it was for another reward)."""
    spent = Decimal(0)
    for entry in LedgerEntry.objects.filter(pocket__account=account, kind=LedgerEntry.Kind.DEBIT,
                                            reference=REDEEM_PREFIX + reference):
        spent = EXACT.subtract(spent, entry.amount)
        redeemed = entry.reason.removeprefix(REASON)
        if redeemed != reward.code:
            raise Conflict(f"reference: {reference!r} already redeemed reward {redeemed}", field="reference",
                           code="reference_reused")
    return Redemption(reward, account, pocket, spent, points_balance(account), duplicate=True)


@transaction.atomic
def redeem_reward(actor: Actor, account: BillingAccount, reward_code: str, *, reference: str) -> Redemption:
    """Spend the reward's cost in points and open the pocket it grants, in one transaction. The same
    `reference` again returns the first redemption and spends nothing. Too few points is refused
    (SpendRefused, code insufficient_units) and changes nothing."""
    actor.require_write()
    reference = _check_reference(reference)
    reward = _reward(reward_code)
    account = lock_account(account)
    grant_key = f"{REDEEM_PREFIX}{account.pk}:{reference}"
    existing = Pocket.objects.filter(grant_key=grant_key).first()
    if existing is not None:
        return _repeat(reward, account, existing, reference)
    if not reward.active:
        raise ValidationFailed(f"reward: {reward.code} is no longer offered", field="reward",
                               code="reward_inactive")
    grant = reward.grant
    if grant.unit.is_money and grant.unit.code != account.currency:
        raise ValidationFailed(f"reward: {reward.code} credits {grant.unit.code}; account {account.number} "
                               f"holds {account.currency}", field="reward", code="unit_mismatch")
    cost = Amount(reward.cost, POINT)
    spent = spend(actor, account, cost, reference=REDEEM_PREFIX + reference, reason=REASON + reward.code)
    if spent.duplicate:  # a debit with this reference exists but no reward pocket: never redeem for free
        raise Conflict(f"reference: {reference!r} was already used for another debit", field="reference",
                       code="reference_reused")
    pocket, _ = open_pocket(actor, account, grant, source=Source.LOYALTY, label=reward.name,
                            valid_until=_valid_until(reward), services=reward.services, grant_key=grant_key,
                            reason=f"loyalty reward {reward.code} for {cost}",
                            reference=REDEEM_PREFIX + reference)
    left = points_balance(account)
    audit.record(actor, "loyalty.redeem", account,
                 {"reward": reward.code, "points": [EXACT.add(left, cost.value), left], "granted": str(grant),
                  "pocket": pocket.pk}, f"reference {reference}")
    return Redemption(reward, account, pocket, cost.value, left)


@dataclass(frozen=True)
class Summary:
    account_id: int
    points: Decimal  # held now
    earned: Decimal  # granted by payments (loyalty point pockets)
    redeemed: Decimal  # spent on rewards


def summary(account: BillingAccount) -> Summary:
    """Points held, earned and redeemed (adjustments and expiry explain any rest)."""
    entries = LedgerEntry.objects.filter(pocket__account=account, pocket__unit=POINT)
    earned = redeemed = Decimal(0)
    for kind, source, amount, ref in entries.values_list("kind", "pocket__source", "amount", "reference"):
        if kind == LedgerEntry.Kind.GRANT and source == Source.LOYALTY:
            earned = EXACT.add(earned, amount)
        elif kind == LedgerEntry.Kind.DEBIT and ref.startswith(REDEEM_PREFIX):
            redeemed = EXACT.subtract(redeemed, amount)
    return Summary(account.pk, points_balance(account), earned, redeemed)


__all__ = ["Earned", "Redemption", "Summary", "earn_for_payment", "points_balance", "points_for",
           "redeem_reward", "summary"]
