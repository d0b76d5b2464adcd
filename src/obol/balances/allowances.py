"""Plan allowances: the units a plan includes per period, granted as pockets, with rollover.

For the period containing a day (cut by `core/periods.py` from the account's bill cycle day,
per the allowance's week/month/quarter/year), a subscription active on at least one day of it
gets one pocket per allowance of its plan version: source `allowance`, restricted to the
allowance's service, valid from the period's first day to the day after its last (tenant
midnight). The plan is the one the timeline shows at the period start (at the first active day
when the subscription starts later); its version is `plan.version_at` that day. An allowance
with `prorate` gets the active days' share of its amount, rounded once at
`RoundingPlace.ALLOWANCE` in the pocket's storage unit (whole seconds, bytes, SMS).

Each pocket has a grant key (subscription, service, allowance position, period start), so
granting again is a no-op and the daily job may run as often as it likes.

Rollover: when the allowance pocket of period N has a `rollover_cap`, period N+1 gets a second
pocket with what rolls over, once period N has ended:

    carry = clamp(unused - (granted - cap), 0, cap)      (and never more than unused)

The units used in a period count against the part that may roll over first: 300 minutes with a
cap of 100 carry 100 when nothing was used, 50 when 50 were used, 0 from 200 used on. The
rollover pocket is used before the new allowance (lower priority number), expires with it, and
does not roll again. `unused` is period N's pocket balance, or, once `obol balances expire`
zeroed it, what its expiry entries took.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.dispatch import receiver
from django.db.models import Prefetch, Q

from obol.balances.models import LedgerEntry, Pocket, Source
from obol.balances.services import lock_account, open_pocket, storage
from obol.subscriptions.signals import subscription_activated
from obol.catalog.models import Allowance, PricePlan
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import ObolError, ValidationFailed
from obol.core.money import EXACT, Amount
from obol.core.periods import Cycle, Frequency, Period
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.subscriptions import timeline
from obol.subscriptions.models import Subscription, SubscriptionChange
from obol.subscriptions.services import start_of_day

ALLOWANCE_PRIORITY = 100
ROLLOVER_PRIORITY = 90  # lower is used first: rolled-over units go before the new allowance
CHUNK = 500  # subscriptions read together by grant_due

logger = logging.getLogger(__name__)


# --- pure rules ------------------------------------------------------------------------------


def carry(granted: Decimal, unused: Decimal, cap: Decimal) -> Decimal:
    """What rolls over from a period: its unused units, counting usage against the part that may
    roll over first, capped. 300 granted, cap 100: 300 unused -> 100, 250 -> 50, 100 -> 0."""
    forfeited = max(EXACT.subtract(granted, cap), Decimal(0))  # the part that never rolls over
    return max(min(cap, EXACT.subtract(unused, forfeited), unused), Decimal(0))


def cycle_for(account, frequency: str) -> Cycle:
    """The account's periods of one frequency, anchored on its bill cycle day."""
    return Cycle(Frequency(frequency), day=account.bill_cycle_day)


def allowance_key(subscription: Subscription, allowance: Allowance, period: Period) -> str:
    return f"allowance:{subscription.pk}:{allowance.service.code}:{allowance.position}:{period.start}"


def rollover_key(previous: Pocket) -> str:
    return f"rollover:{previous.grant_key}"


def _steps(subscription: Subscription) -> list[timeline.Step]:
    """The subscription's timeline, from prefetched changes when grant_due read them in bulk."""
    changes = sorted(subscription.changes.all(), key=lambda change: change.seq)
    return [timeline.Step(c.seq, c.kind, c.effective_date, c.status, c.plan_id, c.quantity) for c in changes]


def _active_spans(steps: list[timeline.Step]) -> list[tuple[date, date | None]]:
    """The [from, to) spans in which the subscription is active (to None: still)."""
    spans = []
    for index, step in enumerate(steps):
        end = steps[index + 1].effective_date if index + 1 < len(steps) else None
        if step.status == timeline.ACTIVE and (end is None or end > step.effective_date):
            spans.append((step.effective_date, end))
    return spans


def _for_people(stored: Amount, unit: str) -> Amount:
    """`stored` in `unit` (minutes, gigabytes) when it is an exact number of them, else as it is
    stored: the pocket's display unit follows the amount it is opened with."""
    try:
        return stored.convert(unit)
    except ValidationFailed:
        return stored


# --- what a subscription is due for a day ----------------------------------------------------


@dataclass(frozen=True)
class Due:
    """One allowance pocket a subscription should hold for a period."""

    allowance: Allowance
    period: Period
    amount: Amount  # what the pocket opens with (prorated and rounded when the allowance says so)
    key: str


class _Catalog:
    """Plan versions and their allowances, read once per plan and day for many subscriptions."""

    def __init__(self):
        self._plans: dict[int, PricePlan] = {}
        self._allowances: dict[tuple[int, date], list[Allowance]] = {}

    def allowances(self, plan_id: int, day: date) -> list[Allowance]:
        if (plan_id, day) not in self._allowances:
            plan = self._plans.get(plan_id)
            if plan is None:
                plan = self._plans[plan_id] = PricePlan.objects.get(pk=plan_id)
            version = plan.version_at(day)
            self._allowances[plan_id, day] = [] if version is None else list(
                version.allowances.select_related("service").order_by("position", "pk"))
        return self._allowances[plan_id, day]


def _dues(subscription: Subscription, day: date, steps: list[timeline.Step], catalog: _Catalog,
          rounding: str) -> list[Due]:
    spans = _active_spans(steps)
    dues = []
    for frequency in Frequency:
        period = cycle_for(subscription.account, frequency).period_containing(day)
        overlaps = [(start, end) for start, end in spans if period.overlap_days(start, end)]
        if not overlaps:
            continue  # not active on any day of the period: nothing is granted
        active_days = sum(period.overlap_days(start, end) for start, end in overlaps)
        first_active = max(overlaps[0][0], period.start)
        reference = period.start if timeline.state_at(steps, period.start) is not None else first_active
        plan_id = timeline.state_at(steps, reference).plan_id
        for allowance in catalog.allowances(plan_id, reference):
            if allowance.period != frequency:
                continue
            amount = Amount(allowance.amount, allowance.unit)
            if allowance.prorate and active_days < period.days:
                stored = storage(amount)
                share = Amount(period.prorate(stored.value, active_days), stored.unit)
                amount = _for_people(round_amount(share, RoundingPlace.ALLOWANCE, rounding), allowance.unit)
            key = allowance_key(subscription, allowance, period)
            dues.append(Due(allowance, period, amount, key))
    return dues


def _unused(pocket: Pocket, expired: Decimal) -> Decimal:
    """What was left of a pocket at its end: its balance, plus what expiry entries took (negative)."""
    return EXACT.subtract(pocket.balance, expired)


def _previous_pockets(subscription_ids, dues: dict[int, list[Due]]) -> dict[int, list[Pocket]]:
    """The allowance pockets with a rollover cap that end where a due period starts, per subscription."""
    starts = {due.period.start for subscription_dues in dues.values() for due in subscription_dues}
    if not starts:
        return {}
    found = defaultdict(list)
    for pocket in Pocket.objects.filter(
        subscription_id__in=subscription_ids, source=Source.ALLOWANCE, grant_key__startswith="allowance:",
        rollover_cap__isnull=False, period_end__in=starts,
    ).order_by("pk"):
        found[pocket.subscription_id].append(pocket)
    return found


def _expired(pockets: list[Pocket]) -> dict[int, Decimal]:
    """Sum of the expiry entries per pocket (negative or zero)."""
    sums: dict[int, Decimal] = defaultdict(Decimal)
    entries = LedgerEntry.objects.filter(pocket__in=pockets, kind=LedgerEntry.Kind.EXPIRY).order_by()
    for pocket_id, amount in entries.values_list("pocket_id", "amount"):
        sums[pocket_id] = EXACT.add(sums[pocket_id], amount)
    return sums


@dataclass(frozen=True)
class Rollover:
    previous: Pocket
    due: Due  # the new period's allowance it rolls into
    amount: Decimal  # in the pocket's storage unit


def _rollovers(dues: list[Due], previous: list[Pocket], expired: dict[int, Decimal]) -> list[Rollover]:
    """What rolls from last period's pockets into this period's, once that period has started."""
    now = clock.now()
    result = []
    for pocket in previous:
        due = next((d for d in dues if d.period.start == pocket.period_end
                    and [d.allowance.service.code] == list(pocket.services)), None)
        if due is None or now < start_of_day(due.period.start):
            continue  # no allowance to roll into, or the previous period is not over yet
        unused = _unused(pocket, expired.get(pocket.pk, Decimal(0)))
        amount = carry(pocket.granted, unused, pocket.rollover_cap)
        if amount > 0:
            result.append(Rollover(pocket, due, amount))
    return result


# --- use cases -------------------------------------------------------------------------------


def grant_allowances(actor: Actor, subscription: Subscription, day: date) -> list[Pocket]:
    """Grant `subscription` its plan's allowances (and what rolls over into them) for the periods
    containing `day`. Returns the pockets this call opened, in the order usage takes from them
    (rolled-over units first); none when everything was granted before."""
    actor.require_write()
    subscription = Subscription.objects.select_related("account").prefetch_related("changes").get(
        pk=subscription.pk)
    return _grant(actor, subscription, day, catalog=_Catalog())


@transaction.atomic
def _grant(actor: Actor, subscription: Subscription, day: date, *, catalog: _Catalog) -> list[Pocket]:
    account = subscription.account = lock_account(subscription.account)
    dues = _dues(subscription, day, _steps(subscription), catalog, current_tenant().rounding)
    previous = _previous_pockets([subscription.pk], {subscription.pk: dues}).get(subscription.pk, [])
    rollovers = _rollovers(dues, previous, _expired(previous))
    results = [_open_allowance(actor, subscription, due) for due in dues]
    results += [_open_rollover(actor, subscription, rollover) for rollover in rollovers]
    opened = [pocket for pocket, created in results if created]
    if opened:
        audit.record(actor, "allowance.grant", account, {
            "subscription": subscription.number,
            "pockets": [{"pocket": p.pk, "label": p.label, "granted": f"{p.granted} {p.unit}",
                         "period": [p.period_start, p.period_end]} for p in opened],
        }, f"allowances of subscription {subscription.number} for {day}")
    return sorted(opened, key=lambda pocket: (pocket.priority, pocket.pk))  # in the order they are used


def _open_allowance(actor: Actor, subscription: Subscription, due: Due) -> tuple[Pocket, bool]:
    allowance, period = due.allowance, due.period
    cap = None
    if allowance.rollover_cap is not None:
        cap = storage(Amount(allowance.rollover_cap, allowance.unit)).value  # counted like the balance
    return open_pocket(
        actor, subscription.account, due.amount, source=Source.ALLOWANCE,
        label=f"{allowance.service.name} allowance {period}", priority=ALLOWANCE_PRIORITY,
        valid_from=start_of_day(period.start), valid_until=start_of_day(period.end),
        services=[allowance.service.code], grant_key=due.key,
        reason=f"allowance of {subscription.number} for {period}",
        subscription=subscription, period_start=period.start, period_end=period.end, rollover_cap=cap,
    )


def _open_rollover(actor: Actor, subscription: Subscription, rollover: Rollover) -> tuple[Pocket, bool]:
    previous, period = rollover.previous, rollover.due.period
    before = Period(previous.period_start, previous.period_end)
    key = rollover_key(previous)
    amount = _for_people(Amount(rollover.amount, previous.unit), previous.display_unit)
    return open_pocket(
        actor, subscription.account, amount, source=Source.ALLOWANCE, label=f"rolled over from {before}",
        priority=ROLLOVER_PRIORITY,
        valid_from=start_of_day(period.start), valid_until=start_of_day(period.end),
        services=list(previous.services), grant_key=key, reference=key,
        reason=f"unused allowance of {subscription.number} rolled over from {before}",
        subscription=subscription, period_start=period.start, period_end=period.end,
    )  # no rollover_cap: rolled-over units do not roll again


@dataclass
class GrantReport:
    day: date
    subscriptions: int = 0  # looked at
    granted: int = 0  # subscriptions that got at least one pocket
    pockets: int = 0  # pockets opened (allowances and rollovers)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (subscription number, reason)

    def __str__(self) -> str:
        return (f"{self.day}: {self.subscriptions} subscription(s) checked, {self.granted} granted, "
                f"{self.pockets} pocket(s) opened, {len(self.errors)} error(s)")


def _candidates(day: date):
    """Subscriptions that may be in service on `day` (the timeline decides): started, not ended."""
    return (Subscription.objects.filter(start_date__lte=day)
            .exclude(status=timeline.PENDING)
            .filter(Q(end_date__isnull=True) | Q(end_date__gt=day))
            .order_by("pk").values_list("pk", flat=True))


def grant_due(actor: Actor, day: date | None = None) -> GrantReport:
    """The daily job: grant every subscription of the tenant in scope that is active or suspended
    on `day` (default: today in the tenant's time zone) what it is due for the periods containing
    `day`. One transaction per subscription; a subscription that fails is reported and the run
    goes on. Subscriptions already granted cost no query of their own."""
    actor.require_write()
    tenant = current_tenant()
    day = day or clock.today(tenant.timezone)
    report = GrantReport(day)
    catalog = _Catalog()
    ids = list(_candidates(day))
    for offset in range(0, len(ids), CHUNK):
        changes = Prefetch("changes", queryset=SubscriptionChange.objects.order_by("seq"))
        chunk = list(Subscription.objects.filter(pk__in=ids[offset:offset + CHUNK])
                     .select_related("account").prefetch_related(changes).order_by("pk"))
        for subscription in _needing_work(chunk, day, catalog, tenant.rounding, report):
            try:
                opened = _grant(actor, subscription, day, catalog=catalog)
            except ObolError as exc:
                report.errors.append((subscription.number, exc.message))
                continue
            except Exception as exc:  # a bad subscription never stops the others; the log has the trace
                logger.exception("granting allowances of subscription %s failed", subscription.number)
                report.errors.append((subscription.number, f"{type(exc).__name__}: {exc}"))
                continue
            report.granted += bool(opened)
            report.pockets += len(opened)
    return report


def _needing_work(chunk: list[Subscription], day: date, catalog: _Catalog, rounding: str,
                  report: GrantReport) -> list[Subscription]:
    """The subscriptions of `chunk` in service on `day` that miss a pocket (read in bulk)."""
    dues: dict[int, list[Due]] = {}
    for subscription in chunk:
        steps = _steps(subscription)
        state = timeline.state_at(steps, day)
        if state is None or state.status not in (timeline.ACTIVE, timeline.SUSPENDED):
            continue
        report.subscriptions += 1
        try:
            dues[subscription.pk] = _dues(subscription, day, steps, catalog, rounding)
        except ObolError as exc:
            report.errors.append((subscription.number, exc.message))
    previous = _previous_pockets(list(dues), dues)
    expired = _expired([p for pockets in previous.values() for p in pockets])
    wanted = {}
    for subscription_id, subscription_dues in dues.items():
        rollovers = _rollovers(subscription_dues, previous.get(subscription_id, []), expired)
        wanted[subscription_id] = {due.key for due in subscription_dues} | {
            rollover_key(rollover.previous) for rollover in rollovers}
    existing = set(Pocket.objects.filter(grant_key__in=set().union(*wanted.values())).order_by()
                   .values_list("grant_key", flat=True)) if wanted else set()
    return [s for s in chunk if wanted.get(s.pk, set()) - existing]


@receiver(subscription_activated)
def grant_on_activation(sender, subscription, effective_date, actor, **kwargs):
    """A subscription gets its first period's allowances when it becomes active, not only at the
    next daily run (which would grant the same pockets: granting twice is a no-op)."""
    grant_allowances(actor, subscription, effective_date)
