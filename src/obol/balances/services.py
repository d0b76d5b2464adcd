"""Pocket use cases: open (grant) pockets, spend, top up, adjust, expire, verify.

Every change to a balance goes through `_post`, which writes the ledger entries and the new
balances together, inside the caller's transaction, with the account row locked so two writers
on one account queue instead of racing. What may be spent is decided by the pure `engine`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
from django.db import connection, transaction
from django.db.models import Q, Sum

from obol.balances import engine
from obol.balances.models import LedgerEntry, Pocket, Source
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.bulk import batches, insert_frame
from obol.core.errors import Conflict, ValidationFailed
from obol.core.money import EXACT, Amount
from obol.core.tenancy import current_tenant
from obol.core.units import base_unit, get_unit
from obol.customers.models import BillingAccount

Kind = LedgerEntry.Kind


class SpendRefused(Conflict):
    """The account may not spend this; `code` says why (insufficient_units, insufficient_credit,
    credit_limit_exceeded, ...), `details` gives the figures."""

    def __init__(self, plan: engine.SpendPlan):
        super().__init__(plan.message, field="quantity", code=plan.code)
        self.plan = plan


def storage(amount: Amount) -> Amount:
    """The amount in the unit pockets count in: the base unit of its dimension (seconds, bytes)."""
    return amount.convert(base_unit(amount.unit))


def lock_account(account: BillingAccount) -> BillingAccount:
    """Take the account's row lock: every balance change of the account runs under it."""
    return BillingAccount.objects.select_for_update().get(pk=account.pk)


def _post(actor: Actor, pocket: Pocket, kind: str, amount: Decimal, *, reason: str = "", reference: str = "",
          service: str = "", at: datetime | None = None) -> LedgerEntry:
    return _post_many(actor, [(pocket, amount)], kind, reason=reason, reference=reference, service=service, at=at)[0]


def _post_many(actor: Actor, changes: list[tuple[Pocket, Decimal]], kind: str, *, reason: str = "",
               reference: str = "", service: str = "", at: datetime | None = None) -> list[LedgerEntry]:
    """Write one ledger entry per (pocket, signed amount) and the pockets' new balances."""
    at = at or clock.now()
    entries = []
    for pocket, amount in changes:
        pocket.balance = EXACT.add(pocket.balance, amount)
        entries.append(LedgerEntry(
            tenant_id=pocket.tenant_id, pocket=pocket, at=at, kind=kind, amount=amount,
            balance_after=pocket.balance, service=service or "", reason=reason, reference=reference,
            actor_kind=actor.kind, actor_id=actor.id, actor_label=actor.label[:200],
        ))
    LedgerEntry.objects.bulk_create(entries)
    Pocket.objects.bulk_update([pocket for pocket, _ in changes], ["balance"])
    return entries


@transaction.atomic
def open_pocket(actor: Actor, account: BillingAccount, amount: Amount, *, source: str, label: str = "",
                priority: int = 100, valid_from: datetime | None = None, valid_until: datetime | None = None,
                services=(), destination_groups=(), grant_key: str | None = None, reason: str = "",
                reference: str = "", **extra) -> tuple[Pocket, bool]:
    """Open a pocket holding `amount` (a grant entry records it). With a `grant_key`, a second
    call with the same key returns the first pocket and grants nothing: (pocket, created)."""
    actor.require_write()
    if amount.value < 0:
        raise ValidationFailed("amount: a pocket opens with zero or more", field="amount")
    lock_account(account)
    if grant_key:
        existing = Pocket.objects.filter(grant_key=grant_key).first()
        if existing is not None:
            return existing, False
    stored = storage(amount)
    if stored.unit.decimals == 0 and stored.value != stored.value.to_integral_value():
        raise ValidationFailed(f"amount: {amount} is not a whole number of {stored.unit.code}s", field="amount",
                               code="invalid_amount")
    if stored.unit.is_money and stored.unit.code != account.currency and stored.unit.kind == "currency":
        raise ValidationFailed(
            f"amount: account {account.number} holds {account.currency}, not {stored.unit.code}", field="amount")
    pocket = Pocket.objects.create(
        tenant_id=account.tenant_id, account=account, unit=stored.unit.code, display_unit=amount.unit.code,
        balance=Decimal(0), granted=stored.value, source=source, label=label, priority=priority,
        valid_from=valid_from or clock.now(), valid_until=valid_until, services=list(services),
        destination_groups=list(destination_groups), grant_key=grant_key, **extra,
    )
    if stored.value:
        _post(actor, pocket, Kind.GRANT, stored.value, reason=reason or f"{source} {label}".strip(),
              reference=reference or (grant_key or ""))
    return pocket, True


def pocket_states(pockets) -> list[engine.PocketState]:
    return [
        engine.PocketState(
            id=p.pk, unit=p.unit, balance=p.balance, priority=p.priority, valid_from=p.valid_from,
            valid_until=p.valid_until, services=tuple(p.services), destination_groups=tuple(p.destination_groups),
            is_accrual=p.is_accrual,
        )
        for p in pockets
    ]


def unpaid_invoices(account: BillingAccount) -> Decimal:
    """Open amount of the account's issued invoices. Billing is not built yet: no invoices, zero."""
    return Decimal(0)


def account_state(account: BillingAccount) -> engine.AccountState:
    return engine.AccountState(
        mode=account.mode, currency=account.currency, credit_limit=account.credit_limit,
        unpaid_invoices=unpaid_invoices(account), rounding=current_tenant().rounding,
        closed=account.status == BillingAccount.Status.CLOSED,
    )


def _request(account: BillingAccount, amount: Amount, *, at, service, destination_group, price,
             price_unit) -> engine.SpendRequest:
    stored = storage(amount)
    unit_price, per = None, Decimal(1)
    if price is not None:  # money per 1 `price_unit` (default: the amount's unit)
        if price.unit.code != account.currency:
            raise ValidationFailed(f"price: account {account.number} pays in {account.currency}, not "
                                   f"{price.unit.code}", field="price", code="unit_mismatch")
        per_unit = get_unit(price_unit) if price_unit else amount.unit
        if per_unit.dimension != amount.unit.dimension or (per_unit.dimension is None and per_unit != amount.unit):
            raise ValidationFailed(f"price_unit: {per_unit.code} does not measure {amount.unit.code}",
                                   field="price_unit")
        unit_price, per = price.value, per_unit.base_factor
    if at is not None and at.tzinfo is None:  # a time without zone is the tenant's local time
        at = at.replace(tzinfo=ZoneInfo(current_tenant().timezone))
    return engine.SpendRequest(quantity=stored.value, unit=stored.unit.code, at=at or clock.now(),
                               service=service, destination_group=destination_group, price=unit_price,
                               price_per=per)


def _pockets_for(account: BillingAccount, unit: str, at: datetime) -> list[Pocket]:
    """The pockets that could pay at `at`: empty and expired ones are left in the database (an
    account collects many over the years); the accrual pocket always comes along."""
    usable = ~Q(balance=Decimal(0)) & (Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    return list(Pocket.objects.filter(Q(source=Source.POSTPAID) | usable, account=account,
                                      unit__in={unit, account.currency}))


def authorize(account: BillingAccount, amount: Amount, *, service: str | None = None,
              destination_group: str | None = None, price: Amount | None = None, price_unit: str | None = None,
              at: datetime | None = None) -> engine.SpendPlan:
    """Can `account` spend `amount` (of any unit) on `service` now, and from which pockets?
    `price` (account currency per 1 `price_unit`, default per 1 unit of `amount`) lets money pay for
    what unit pockets do not cover. Reads only; `spend` does the same and books it."""
    request = _request(account, amount, at=at, service=service, destination_group=destination_group,
                       price=price, price_unit=price_unit)
    return engine.plan_spend(pocket_states(_pockets_for(account, request.unit, request.at)), account_state(account),
                             request)


@dataclass(frozen=True)
class Spent:
    plan: engine.SpendPlan
    entries: tuple[LedgerEntry, ...]
    duplicate: bool = False


@transaction.atomic
def spend(actor: Actor, account: BillingAccount, amount: Amount, *, reference: str, service: str | None = None,
          destination_group: str | None = None, price: Amount | None = None, price_unit: str | None = None,
          at: datetime | None = None, reason: str = "") -> Spent:
    """Book a spend as `authorize` plans it, or raise SpendRefused. `reference` (e.g. the usage
    record's key) makes it idempotent: spending the same reference again books nothing."""
    actor.require_write()
    if not reference:
        raise ValidationFailed("reference: a spend needs the reference of what caused it", field="reference")
    account = lock_account(account)
    booked = tuple(LedgerEntry.objects.filter(pocket__account=account, kind=Kind.DEBIT, reference=reference))
    if booked:
        return Spent(engine.SpendPlan(True), booked, duplicate=True)
    request = _request(account, amount, at=at, service=service, destination_group=destination_group,
                       price=price, price_unit=price_unit)
    pockets = {p.pk: p for p in _pockets_for(account, request.unit, request.at)}
    plan = engine.plan_spend(pocket_states(pockets.values()), account_state(account), request)
    if not plan.allowed:
        raise SpendRefused(plan)
    changes = []
    for take in plan.takes:
        pocket = pockets.get(take.pocket_id) or accrual_pocket(actor, account)
        changes.append((pocket, -take.amount))
    entries = _post_many(actor, changes, Kind.DEBIT, reason=reason or "usage", reference=reference,
                         service=service or "", at=request.at)
    return Spent(plan, tuple(entries))


@transaction.atomic
def accrual_pocket(actor: Actor, account: BillingAccount) -> Pocket:
    """The account's pocket of unbilled usage (negative: what the account owes), opened on first use."""
    account = lock_account(account)
    return Pocket.objects.get(pk=accrual_pockets(actor, [(account.pk, account.tenant_id, account.currency)])[account.pk])


def money_pocket(actor: Actor, account: BillingAccount, currency: str | None = None) -> Pocket:
    """The account's main money pocket (top-ups land here), opened on first use."""
    currency = currency or account.currency
    pocket, _ = open_pocket(actor, account, Amount(0, currency), source=Source.TOPUP, label="Main balance",
                            grant_key=f"main:{account.pk}:{currency}")
    return pocket


@transaction.atomic
def top_up(actor: Actor, account: BillingAccount, amount: Amount, *, reference: str, reason: str = "") -> list[LedgerEntry]:
    """Credit money paid in (`reference`: the payment's). A prepaid overdraft is repaid first.
    The same reference twice credits once."""
    actor.require_write()
    if amount.value <= 0:
        raise ValidationFailed("amount: a top-up must be positive", field="amount")
    if not reference:
        raise ValidationFailed("reference: a top-up needs the payment reference", field="reference")
    account = lock_account(account)
    booked = list(LedgerEntry.objects.filter(pocket__account=account, kind=Kind.TOPUP, reference=reference))
    if booked:
        if sum(e.amount for e in booked) != amount.value:
            raise Conflict(f"reference: payment {reference!r} was already credited with a different amount",
                           field="reference", code="reference_reused")
        return booked
    changes = []
    left = amount.value
    if amount.unit.code == account.currency and account.mode == engine.PREPAID:
        accrual = Pocket.objects.filter(grant_key=f"accrual:{account.pk}").first()
        if accrual is not None and accrual.balance < 0:
            repay = min(-accrual.balance, left)
            changes.append((accrual, repay))
            left = EXACT.subtract(left, repay)
    if left > 0:
        changes.append((money_pocket(actor, account, amount.unit.code), left))
    entries = _post_many(actor, changes, Kind.TOPUP, reason=reason or "top-up", reference=reference)
    audit.record(actor, "account.top_up", account, {"amount": str(amount), "reference": reference}, reason)
    return entries


@transaction.atomic
def adjust(actor: Actor, pocket: Pocket, amount: Decimal, *, reason: str, reference: str = "") -> LedgerEntry:
    """A staff correction of one pocket (signed, in the pocket's unit). A reason is required, it is
    audited, and no pocket other than the accrual goes below zero."""
    actor.require_write()
    if not (reason or "").strip():
        raise ValidationFailed("reason: an adjustment needs a reason", field="reason")
    lock_account(pocket.account)
    pocket = Pocket.objects.get(pk=pocket.pk)
    new_balance = EXACT.add(pocket.balance, amount)
    if new_balance < 0 and not pocket.is_accrual:
        raise ValidationFailed(
            f"amount: {pocket} holds {pocket.balance} {pocket.unit}; an adjustment of {amount} would take it "
            "below zero", field="amount", code="insufficient_balance")
    if pocket.is_accrual:
        _check_accrual_adjustment(pocket, amount, new_balance)
    entry = _post(actor, pocket, Kind.ADJUSTMENT, amount, reason=reason, reference=reference)
    audit.record(actor, "pocket.adjust", pocket.account, {"pocket": pocket.pk, "amount": amount,
                                                          "balance": [pocket.balance - amount, pocket.balance]},
                 reason)
    return entry


def _check_accrual_adjustment(pocket: Pocket, amount: Decimal, new_balance: Decimal) -> None:
    """The unbilled-usage pocket never turns into credit, and owing more obeys the credit limit."""
    if new_balance > 0:
        raise ValidationFailed(f"amount: the account owes {-pocket.balance} {pocket.unit} of unbilled usage; "
                               f"an adjustment of {amount} would turn it into credit (top up instead)",
                               field="amount", code="invalid_adjustment")
    if amount < 0:
        refusal = engine.accrual_refusal(account_state(pocket.account), -pocket.balance, -amount)
        if refusal is not None:
            raise ValidationFailed(f"amount: {refusal.message}", field="amount", code=refusal.code)


def expire_pockets(actor: Actor, at: datetime | None = None) -> int:
    """Zero what is left in pockets whose validity ended (an expiry entry each), one transaction
    per account with the account locked. Returns how many pockets were expired."""
    at = at or clock.now()
    due = Pocket.objects.filter(valid_until__lte=at).exclude(source=Source.POSTPAID).exclude(balance=Decimal(0))
    by_account: dict[int, list[int]] = {}
    for pocket_id, account_id in due.values_list("pk", "account_id"):
        by_account.setdefault(account_id, []).append(pocket_id)
    done = 0
    for account_id, pocket_ids in by_account.items():
        with transaction.atomic():
            lock_account(BillingAccount(pk=account_id))
            for pocket in Pocket.objects.filter(pk__in=pocket_ids).exclude(balance=Decimal(0)):
                _post(actor, pocket, Kind.EXPIRY, -pocket.balance, reason="validity ended", at=pocket.valid_until)
                done += 1
    return done


@dataclass(frozen=True)
class Mismatch:
    pocket_id: int
    account: str
    balance: Decimal
    ledger_sum: Decimal

    def __str__(self) -> str:
        return (f"pocket {self.pocket_id} of account {self.account}: balance {self.balance} but its ledger "
                f"entries sum to {self.ledger_sum}")


def verify() -> list[Mismatch]:
    """Every pocket's balance must equal the sum of its ledger entries (tenant in scope, or all)."""
    sums: dict[int, Decimal] = {}
    entries = LedgerEntry.objects.order_by()
    if connection.vendor == "postgresql":  # numeric sums are exact there: let the database add
        sums = dict(entries.values("pocket_id").annotate(total=Sum("amount")).values_list("pocket_id", "total"))
    else:  # SQLite stores amounts as text: add them exactly here
        for pocket_id, amount in entries.values_list("pocket_id", "amount").iterator(2000):
            sums[pocket_id] = EXACT.add(sums.get(pocket_id, Decimal(0)), amount)
    mismatches = []
    for pocket_id, number, balance in Pocket.objects.order_by("pk").values_list("pk", "account__number", "balance"):
        total = sums.get(pocket_id, Decimal(0))
        if total != balance:
            mismatches.append(Mismatch(pocket_id, number, balance, total))
    return mismatches


def accrual_pockets(actor: Actor, accounts: list[tuple[int, int, str]]) -> dict[int, int]:
    """The unbilled-usage pocket of each account, given as (account id, tenant id, currency):
    {account id: pocket id}; the missing ones are opened in one insert (at zero: no grant entry).
    Call under the accounts' locks."""
    actor.require_write()
    keys = {f"accrual:{account_id}" for account_id, _, _ in accounts}
    found: dict[int, int] = {}
    for part in batches(sorted(keys)):
        found.update(Pocket.objects.filter(grant_key__in=part).values_list("account_id", "pk"))
    missing = [a for a in accounts if a[0] not in found]
    if missing:  # a first import opens hundreds of thousands: one insert, no model object each
        now = clock.now()
        insert_frame(Pocket, pl.DataFrame(missing, orient="row", schema={
            "account_id": pl.Int64, "tenant_id": pl.Int64, "unit": pl.Utf8}).with_columns(
            pl.col("unit").alias("display_unit"), pl.lit("0").alias("balance"), pl.lit("0").alias("granted"),
            pl.lit(Source.POSTPAID.value).alias("source"), pl.lit("Unbilled usage").alias("label"),
            pl.lit(32767, pl.Int64).alias("priority"), pl.lit(now).dt.convert_time_zone("UTC").alias("valid_from"),
            pl.lit("[]").alias("services"), pl.lit("[]").alias("destination_groups"),
            pl.format("accrual:{}", "account_id").alias("grant_key"),
            pl.lit(now).dt.convert_time_zone("UTC").alias("created_at")))
        for part in batches(sorted(f"accrual:{a[0]}" for a in missing)):
            found.update(Pocket.objects.filter(grant_key__in=part).values_list("account_id", "pk"))
    return found


@transaction.atomic
def credit_pocket(actor: Actor, pocket: Pocket, amount: Decimal, *, reference: str, reason: str) -> LedgerEntry:
    """Give units back to a pocket (a reversed usage debit), under the account's lock."""
    actor.require_write()
    lock_account(pocket.account)
    pocket = Pocket.objects.get(pk=pocket.pk)
    if amount <= 0:
        raise ValidationFailed("amount: a credit must be positive", field="amount")
    return _post(actor, pocket, Kind.CREDIT, amount, reason=reason, reference=reference)


@transaction.atomic
def refund_usage(actor: Actor, account: BillingAccount, amount: Amount, *, to_accrual: bool, reference: str):
    """Give back money booked for usage: to the unbilled-usage pocket, or to the main money pocket."""
    actor.require_write()
    account = lock_account(account)
    pocket = accrual_pocket(actor, account) if to_accrual else money_pocket(actor, account, amount.unit.code)
    return _post(actor, pocket, Kind.CREDIT, amount.value, reason="usage re-rated", reference=reference)


def book_takes(actor: Actor, account: BillingAccount, takes, *, reference: str, service: str = "",
               at: datetime | None = None, reason: str = "usage") -> list[LedgerEntry]:
    """Debit what a spend plan took: (pocket id, amount) pairs, pocket id 0 being the account's
    unbilled-usage pocket (opened if needed). Call under the account's lock (`lock_account`)."""
    actor.require_write()
    ids = {pocket_id for pocket_id, _ in takes if pocket_id}
    pockets = {p.pk: p for p in Pocket.objects.filter(pk__in=ids, account_id=account.pk)}
    if len(pockets) != len(ids):
        raise ValidationFailed(f"takes: pockets {sorted(ids - set(pockets))} are not account {account.number}'s",
                               field="takes")
    changes = []
    for pocket_id, amount in takes:
        if pocket_id not in pockets:  # 0: the unbilled-usage pocket, fetched once
            pockets[pocket_id] = accrual_pocket(actor, account)
        changes.append((pockets[pocket_id], -amount))
    return _post_many(actor, changes, Kind.DEBIT, reason=reason, reference=reference, service=service, at=at)
