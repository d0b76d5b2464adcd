"""An account's billing events, read from the database for the charge calculation
(`billing.charges`): what its subscriptions' timelines, plan versions and quantities come to, and
the lines its invoices already hold.

- A subscription is billed from its activation, while active, and while suspended when the plan
  version in force bills during suspension; not while pending, and not from its termination on.
- Each stretch of the timeline is cut where a new version of the plan takes effect; each recurring
  or quantity charge of the version in force gives a span: a recurring charge costs price x
  quantity a period, a quantity charge what its model makes of the quantity.
- One-time charges fall on the activation or the termination day, at the version then in force.
- Usage is billed from what rated records accrued (postpaid and hybrid accounts), summed per
  subscription, service, destination group and usage period (`usage_of`, `billing.usage_charges`).
- Discounts are the promotions applied to the account's subscriptions (`discounts_of`,
  `billing.discounts`).
- Invoiced lines are those of every invoice and credit note of the account that is not cancelled.

A charge is known by its code across plan changes and versions, so a plan change repairs it by
price (credit the old, charge the new). Each span carries the terms of the version it comes from
(billing, proration, name, tax category, revenue account): a period is billed on the terms in force
on its first billed day, and its lines take the name, tax category and revenue account of their
price's span. The service periods follow the cycle of the charge's first version.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Q, Sum

from obol.balances import promotions
from obol.billing import charges, discounts
from obol.billing.charge_models import Tier, price_quantity
from obol.billing.models import Invoice, InvoiceLine
from obol.billing.usage_charges import UsageAggregate
from obol.catalog.models import Charge, PricePlanVersion, Service
from obol.core.bulk import filter_in
from obol.core.money import EXACT
from obol.core.periods import Cycle, Period
from obol.customers.models import BillingAccount
from obol.subscriptions import timeline
from obol.subscriptions.models import Subscription, SubscriptionChange
from obol.usage.models import RatedRecord

BILLED_STATES = {timeline.ACTIVE, timeline.SUSPENDED}
# Usage older than this before a run is no longer billed (nor re-billed): it bounds what each run reads.
USAGE_LOOKBACK_DAYS = 400


def _versions(plan_ids) -> dict[int, list[PricePlanVersion]]:
    found = defaultdict(list)
    for version in (PricePlanVersion.objects.filter(plan_id__in=plan_ids).select_related("plan")
                    .prefetch_related("charges__tiers", "charges__product", "charges__service")
                    .order_by("plan_id", "effective_from")):
        version.charge_list = list(version.charges.all())  # plain lists: read for every subscription
        for charge in version.charge_list:
            charge.tier_list = [Tier(t.up_to, t.unit_price, t.flat_fee) for t in charge.tiers.all()]
        found[version.plan_id].append(version)
    return found


def _stretches(steps: list[timeline.Step], versions: dict[int, list[PricePlanVersion]]):
    """(start, end or None, step, version) for every billed stretch, cut at version changes."""
    for index, step in enumerate(steps):
        end = steps[index + 1].effective_date if index + 1 < len(steps) else None
        if step.status not in BILLED_STATES or (end is not None and end <= step.effective_date):
            continue
        own = versions.get(step.plan_id, [])
        cuts = [v.effective_from for v in own if step.effective_date < v.effective_from and (end is None or
                                                                                              v.effective_from < end)]
        bounds = [step.effective_date, *cuts]
        for n, start in enumerate(bounds):
            stop = bounds[n + 1] if n + 1 < len(bounds) else end
            version = next((v for v in reversed(own) if v.effective_from <= start), None)
            if version is None:
                continue
            if step.status == timeline.SUSPENDED and not version.bill_during_suspension:
                continue
            yield start, stop, step, version


def _per_period(charge: Charge, quantity: Decimal) -> Decimal:
    if charge.kind == Charge.Kind.RECURRING:
        return EXACT.multiply(charge.price, quantity)
    return price_quantity(charge.model, quantity, price=charge.price, tiers=charge.tier_list,
                          package_size=charge.package_size).amount


def _revenue(charge: Charge) -> str:
    return charge.product.revenue_account if charge.product is not None else ""


def _label(version: PricePlanVersion, quantity: Decimal) -> str:
    return version.plan.name if quantity == 1 else f"{version.plan.name} x {quantity.normalize()}"


def charge_cycle(account: BillingAccount, period: str, start: date) -> Cycle:
    """The service periods of a charge priced per `period`, for a subscription from `start`: on the
    account's cycle day; a quarter or a year from the account's cycle month when the account is
    billed quarterly or yearly, else from the month the subscription started; a week from the
    account's weekday when it is billed weekly, else from the subscription's first weekday."""
    month = account.bill_cycle_month if account.bill_period in ("quarter", "year") else start.month
    weekday = account.bill_weekday if account.bill_period == "week" else start.weekday()
    return Cycle(period, day=account.bill_cycle_day, month=month, weekday=weekday)


def subscription_events(account: BillingAccount, subscription: _Subscription, steps: list[timeline.Step],
                        versions: dict[int, list[PricePlanVersion]]):
    spans: dict[str, list[charges.Span]] = defaultdict(list)
    first: dict[str, Charge] = {}
    for start, stop, step, version in _stretches(steps, versions):
        for charge in version.charge_list:
            if charge.kind not in (Charge.Kind.RECURRING, Charge.Kind.QUANTITY):
                continue
            first.setdefault(charge.code, charge)
            spans[charge.code].append(charges.Span(
                start, stop, _per_period(charge, step.quantity), _label(version, step.quantity),
                billing=charge.billing or charges.ADVANCE, prorate=charge.prorate, name=charge.name,
                tax_category=charge.tax_category, revenue_account=_revenue(charge)))
    recurring = []
    for code, found in spans.items():
        charge, start = first[code], subscription.start_date
        cycle = charge_cycle(account, charge.period or "month", start)
        recurring.append(charges.RecurringCharge(
            str(subscription.pk), code, charge.name, cycle, charge.billing or charges.ADVANCE, charge.prorate,
            tuple(found), charge.tax_category, _revenue(charge)))
    one_time = []
    for step in steps:
        event = {timeline.ACTIVE: Charge.Event.ACTIVATION, timeline.TERMINATED: Charge.Event.TERMINATION}.get(
            step.status) if step.kind in ("activate", "terminate") else None
        if event is None:
            continue
        version = next((v for v in reversed(versions.get(step.plan_id, [])) if v.effective_from <= step.effective_date),
                       None)
        for charge in version.charge_list if version else ():
            if charge.kind == Charge.Kind.ONE_TIME and charge.event == event:
                one_time.append(charges.OneTimeCharge(str(subscription.pk), charge.code, charge.name,
                                                      step.effective_date, charge.price, charge.tax_category,
                                                      _revenue(charge)))
    return recurring, one_time


def _usage_charge(steps: list[timeline.Step], versions: dict[int, list[PricePlanVersion]], service: str,
                  day: date) -> Charge | None:
    """The usage charge of `service` in the plan version the subscription had on `day` (else its
    latest plan's): it names the line and gives its tax category and revenue account."""
    step = next((s for s in reversed(steps) if s.effective_date <= day), steps[-1] if steps else None)
    if step is None:
        return None
    own = versions.get(step.plan_id, [])
    version = next((v for v in reversed(own) if v.effective_from <= day), own[-1] if own else None)
    return next((c for c in (version.charge_list if version else ()) if c.kind == Charge.Kind.USAGE
                 and c.service is not None and c.service.code == service), None)


def usage_of(accounts: list[BillingAccount], target: date, steps: dict[int, list[timeline.Step]],
             versions: dict[int, list[PricePlanVersion]]) -> dict[int, list[UsageAggregate] | None]:
    """The usage of the postpaid and hybrid accounts before `target` that accrued to their
    unbilled-usage pocket (`RatedRecord.accrued_micros`: a postpaid record's whole price, a hybrid
    one's beyond its money pockets), summed in the database per subscription, service, destination
    group and usage period (the monthly cycle the records were rated in), from records of the last
    USAGE_LOOKBACK_DAYS. Records that allowances paid whole count for their units. Prepaid accounts
    paid their usage from their pockets: None, their usage is not invoiced. A record rated while
    the account was prepaid accrued nothing, so turning postpaid does not invoice it again."""
    billed = {a.pk: a for a in accounts if a.mode != BillingAccount.Mode.PREPAID}
    settled = settled_before(target)
    since = datetime.combine(settled, time(0), tzinfo=UTC)
    records = RatedRecord.objects.filter(start__gte=since, cycle_start__gte=settled, cycle_start__lt=target).filter(
        Q(accrued_micros__gt=0) | Q(price_micros=0))
    rows = filter_in(records
                     .values("account_id", "subscription_id", "service", "destination_group", "cycle_start")
                     .annotate(micros=Sum("accrued_micros"), billed=Sum("billed"), included=Sum("included"))
                     .order_by(), "account_id", list(billed))
    rows = list(rows)
    services = {s.code: s for s in Service.objects.filter(code__in={r["service"] for r in rows})}
    found: dict[int, list[UsageAggregate] | None] = {a.pk: [] if a.pk in billed else None for a in accounts}
    cycles = {day: Cycle("month", day=day) for day in {a.bill_cycle_day for a in billed.values()}}  # the rating cycles
    for r in rows:
        account, start = billed[r["account_id"]], r["cycle_start"]
        end = cycles[account.bill_cycle_day].period_containing(start).end
        charge = _usage_charge(steps.get(r["subscription_id"], []), versions, r["service"], start)
        service = services.get(r["service"])
        name = (charge.name if charge else "") or (service.name if service else r["service"])
        if r["destination_group"]:
            name = f"{name} – {r['destination_group']}"
        found[account.pk].append(UsageAggregate(
            str(r["subscription_id"]), r["service"], r["destination_group"], Period(start, end),
            Decimal(r["micros"] or 0).scaleb(-6), Decimal(r["billed"] or 0), Decimal(r["included"] or 0),
            unit=service.unit if service else "", name=name,
            tax_category=charge.tax_category if charge else "standard",
            revenue_account=_revenue(charge) if charge else ""))
    return found


def settled_before(target: date) -> date:
    """Usage periods starting and discounts ending before this day are settled: a run neither reads
    nor repairs them (USAGE_LOOKBACK_DAYS)."""
    return target - timedelta(days=USAGE_LOOKBACK_DAYS)


def discounts_of(accounts: list[BillingAccount], target: date) -> dict[int, list[discounts.Discount]]:
    """The discounts (promotions applied to subscriptions, `balances.promotions`) of the accounts
    whose window started by `target` and did not end before the last USAGE_LOOKBACK_DAYS."""
    found: dict[int, list[discounts.Discount]] = defaultdict(list)
    stored = promotions.discounts_of([a.pk for a in accounts], settled_before(target), target + timedelta(days=1))
    for account_id, applied in stored.items():
        for d in applied:
            found[account_id].append(discounts.Discount(
                f"discount:{d.application_id}", f"{d.promotion_name} ({d.promotion_code})", str(d.subscription_id),
                d.kind, d.starts, d.ends, percent=d.percent, amount=d.amount.value if d.amount else None,
                charge_kinds=d.charge_kinds, charge_codes=d.charge_codes,
                currency=d.amount.unit.code if d.amount else ""))
    return found


_LINE_FIELDS = ("pk", "invoice__account_id", "subscription_id", "charge_code", "name", "kind", "amount",
                "service_start",
                "service_end", "per_period", "period_start", "period_end", "tax_category", "reverses_id", "label",
                "revenue_account", "quantity", "included", "unit", "credits_id")


def _line(pk, subscription_id, code, name, kind, amount, start, end, per_period, period_start, period_end, category,
          reverses_id, label, revenue_account, quantity, included, unit, credits_id) -> charges.Line:
    return charges.Line(str(subscription_id), code, name, kind, amount, start, end, per_period=per_period,
                        period=Period(period_start, period_end) if period_start else None, tax_category=category,
                        reverses=str(reverses_id) if reverses_id else None, id=str(pk), label=label,
                        revenue_account=revenue_account, quantity=quantity, included=included, unit=unit,
                        credits=str(credits_id) if credits_id else None)


@dataclass(frozen=True)
class _Subscription:
    pk: int
    account_id: int
    start_date: date


def tables_read() -> tuple:
    """The models whose tables `events_of` reads (for `core.bulk.refresh_statistics`)."""
    from obol.balances.models import PromotionApplication
    return (BillingAccount, Subscription, SubscriptionChange, Invoice, InvoiceLine, RatedRecord, PromotionApplication)


def events_of(accounts: list[BillingAccount], target: date,
              versions: dict[int, list[PricePlanVersion]] | None = None) -> dict[int, charges.Events]:
    """The billing events of each account that can matter on `target`, read with a handful of
    queries for all of them (subscriptions, timelines, plan versions, invoiced lines, usage,
    discounts), as value lists. `versions` may be a cache shared across calls (plan versions are
    few and change rarely)."""
    ids = [account.pk for account in accounts]
    subscriptions = [_Subscription(*row) for row in filter_in(Subscription.objects.filter(start_date__lte=target)
                                                              .values_list("pk", "account_id", "start_date"),
                                                              "account_id", ids)]
    steps: dict[int, list[timeline.Step]] = defaultdict(list)
    changes = filter_in(SubscriptionChange.objects.values_list(
        "subscription_id", "seq", "kind", "effective_date", "status", "plan_id", "quantity"), "subscription_id",
        [s.pk for s in subscriptions])
    for subscription_id, *step in sorted(changes, key=lambda c: (c[0], c[1])):
        steps[subscription_id].append(timeline.Step(*step))
    versions = {} if versions is None else versions
    missing = {step.plan_id for found in steps.values() for step in found} - set(versions)
    versions.update(_versions(missing))
    invoiced: dict[int, list[charges.Line]] = defaultdict(list)
    rows = InvoiceLine.objects.exclude(invoice__state=Invoice.State.CANCELLED).values_list(*_LINE_FIELDS)
    for pk, account_id, *row in sorted(filter_in(rows, "invoice__account_id", ids), key=lambda r: r[0]):
        invoiced[account_id].append(_line(pk, *row))
    by_account = {account.pk: account for account in accounts}
    recurring: dict[int, list] = defaultdict(list)
    one_time: dict[int, list] = defaultdict(list)
    for subscription in subscriptions:
        r, o = subscription_events(by_account[subscription.account_id], subscription, steps[subscription.pk], versions)
        recurring[subscription.account_id] += r
        one_time[subscription.account_id] += o
    usage = usage_of(accounts, target, steps, versions)
    offs = discounts_of(accounts, target)
    settled = settled_before(target)
    return {a.pk: charges.Events(tuple(recurring[a.pk]), tuple(one_time[a.pk]), tuple(invoiced[a.pk]),
                                 None if usage[a.pk] is None else tuple(usage[a.pk]), tuple(offs[a.pk]), settled)
            for a in accounts}


def account_events(account: BillingAccount, target: date) -> charges.Events:
    """The billing events of one account (see `events_of`)."""
    return events_of([account], target)[account.pk]
