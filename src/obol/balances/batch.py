"""Booking batch-rated usage: a chunk of a usage file's records in a few set-based statements.

A chunk of 50,000 records can touch tens of thousands of accounts. `book_usage` therefore never
makes a model object per account, pocket or entry: it locks the accounts in id order, reads the
pockets' balances as plain values under the locks, plans prepaid and hybrid money with the one
spend engine (`engine.plan_spend`, as `services.spend` does), writes the ledger entries with
`core.bulk.insert_frame` (COPY on PostgreSQL) and the new balances in one statement. The ledger
gets one debit per pocket and service per chunk; the rated records keep the per-record detail.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import polars as pl
from django.db import transaction
from django.db.models import Q

from obol.balances import engine
from obol.balances.models import LedgerEntry, Pocket, Source
from obol.balances.services import SpendRefused, account_state, pocket_states, accrual_pockets
from obol.core import clock
from obol.core.actors import Actor
from obol.core.bulk import batches, filter_in, insert_frame, update_column
from obol.core.errors import Conflict
from obol.core.fields import canonical_text
from obol.core.money import EXACT, Amount
from obol.customers.models import BillingAccount

Kind = LedgerEntry.Kind


@dataclass(frozen=True)
class PocketUse:
    """Units of one service that a batch of rated usage took from one pocket."""

    pocket_id: int
    service: str
    quantity: Decimal
    at: datetime  # the last record's start


@dataclass(frozen=True)
class MoneyUse:
    """Money a batch of rated usage costs one account: from its money pockets (the caller has
    checked they cover it), or `to_accrual` onto its unbilled-usage pocket, without refusal."""

    account_id: int
    amount: Amount
    to_accrual: bool


def lock_accounts(account_ids) -> None:
    """Take the row locks of many accounts, in id order (two batches never wait on each other in
    a cycle)."""
    for part in batches(sorted(set(account_ids))):
        list(BillingAccount.objects.select_for_update().filter(pk__in=part).order_by("pk").values_list("pk"))


class _Balances:
    """The touched pockets' balances as plain values, and the entries that change them."""

    def __init__(self, actor: Actor, reference: str):
        self.actor, self.reference = actor, reference
        self.balance: dict[int, Decimal] = {}
        self.tenant: dict[int, int] = {}
        self.rows: list[tuple] = []

    def load(self, pocket_ids) -> None:
        for part in batches(sorted(set(pocket_ids) - set(self.balance))):
            for pk, tenant_id, balance in Pocket.objects.filter(pk__in=part).values_list("pk", "tenant_id", "balance"):
                self.balance[pk], self.tenant[pk] = balance, tenant_id

    def debit(self, pocket_id: int, amount: Decimal, service: str, at: datetime) -> None:
        after = EXACT.subtract(self.balance[pocket_id], amount)
        self.balance[pocket_id] = after
        self.rows.append((self.tenant[pocket_id], pocket_id, at, canonical_text(-amount), canonical_text(after),
                          service))

    def write(self) -> int:
        actor = self.actor
        frame = pl.DataFrame(self.rows, orient="row", schema={
            "tenant_id": pl.Int64, "pocket_id": pl.Int64, "at": pl.Datetime("us", "UTC"), "amount": pl.Utf8,
            "balance_after": pl.Utf8, "service": pl.Utf8})
        insert_frame(LedgerEntry, frame.with_columns(
            pl.lit(Kind.DEBIT.value).alias("kind"), pl.lit("usage").alias("reason"),
            pl.lit(self.reference).alias("reference"), pl.lit(actor.kind).alias("actor_kind"),
            pl.lit(actor.id or "").alias("actor_id"), pl.lit(actor.label[:200]).alias("actor_label")))
        update_column(Pocket, "balance", {pk: self.balance[pk] for pk in {row[1] for row in self.rows}})
        return len(self.rows)


def _money_plans(uses: list[MoneyUse], books: _Balances) -> list[engine.SpendPlan]:
    """What each paying account's money pockets give, planned by the spend engine (one query for
    all payers' pockets; balances already changed in this batch are the ones planned with)."""
    if not uses:
        return []
    now = clock.now()
    accounts = {a.pk: a for a in filter_in(BillingAccount.objects.all(), "pk", [u.account_id for u in uses])}
    usable = ~Q(balance=Decimal(0)) & (Q(valid_until__isnull=True) | Q(valid_until__gt=now))
    by_account: dict[int, list[Pocket]] = {}
    for pocket in filter_in(Pocket.objects.filter(usable).exclude(source=Source.POSTPAID), "account_id", accounts):
        if pocket.pk in books.balance:
            pocket.balance = books.balance[pocket.pk]
        else:
            books.balance[pocket.pk], books.tenant[pocket.pk] = pocket.balance, pocket.tenant_id
        by_account.setdefault(pocket.account_id, []).append(pocket)
    plans = []
    for use in uses:
        account = accounts[use.account_id]
        request = engine.SpendRequest(quantity=use.amount.value, unit=use.amount.unit.code, at=now)
        money = [p for p in by_account.get(account.pk, []) if p.unit == account.currency]
        plan = engine.plan_spend(pocket_states(money), account_state(account), request)
        if plan.allowed and plan.accrued:
            plan = engine.SpendPlan(False, code="insufficient_credit", message=(
                f"account {account.number}: its money pockets no longer cover {use.amount}: rate the file again"))
        if not plan.allowed:
            raise SpendRefused(plan)
        plans.append(plan)
    return plans


@transaction.atomic
def book_usage(actor: Actor, uses: list[PocketUse], money: list[MoneyUse], *, reference: str) -> int:
    """Book a batch of batch-rated usage: one debit entry per pocket and service for the unit
    `uses`, and per account the money from its money pockets or onto its unbilled-usage pocket,
    all with `reference` (the batch's). Returns the number of ledger entries written. Raises
    Conflict when a pocket no longer holds what rating planned (spent elsewhere meanwhile)."""
    actor.require_write()
    owners: dict[int, int] = {}
    for part in batches(sorted({u.pocket_id for u in uses})):
        owners.update(Pocket.objects.filter(pk__in=part).values_list("pk", "account_id"))
    lock_accounts(set(owners.values()) | {m.account_id for m in money})
    books = _Balances(actor, reference)
    books.load(owners)  # read again under the locks
    for use in uses:
        if use.quantity > books.balance[use.pocket_id]:
            raise Conflict(f"pocket {use.pocket_id} holds {books.balance[use.pocket_id]}, less than the "
                           f"{use.quantity} rating planned for {reference}: rate the file again", code="pocket_changed")
        books.debit(use.pocket_id, use.quantity, use.service, use.at)
    now = clock.now()
    for plan in _money_plans([m for m in money if m.amount.value > 0 and not m.to_accrual], books):
        for take in plan.takes:
            books.debit(take.pocket_id, take.amount, "", now)
    accrued = [m for m in money if m.amount.value > 0 and m.to_accrual]
    if accrued:
        owner_rows = {}
        for part in batches(sorted({m.account_id for m in accrued})):
            owner_rows.update({pk: (pk, tenant_id, currency) for pk, tenant_id, currency in
                               BillingAccount.objects.filter(pk__in=part).values_list("pk", "tenant_id", "currency")})
        accruals = accrual_pockets(actor, list(owner_rows.values()))
        books.load(accruals.values())
        for use in accrued:
            books.debit(accruals[use.account_id], use.amount.value, "", now)
    return books.write()
