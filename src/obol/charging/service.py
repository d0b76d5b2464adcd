"""Real-time charging (online credit control, as 3GPP Gy / CGRateS SessionS) as a service that any
transport calls: the HTTP routes (charging/api.py) today, a Diameter front end later.

    start(actor, request_id=..., subscriber=..., service="voice", destination=..., requested=300)
    update(actor, session_id, request_id=..., used=300, requested=600)
    terminate(actor, session_id, request_id=..., used=61)
    charge_event(actor, request_id=..., subscriber=..., service="sms", destination=..., quantity=1)
    sweep(actor)   # commit and release sessions whose grant expired

Every call returns an `Answer` with a stable `code` ("ok" or why not). A request id answered before
gets its first answer again and changes nothing. Each call is one transaction under the account's
row lock (`balances.services.lock_account`): requests on one account serialise; on PostgreSQL two
accounts never wait for each other.

The rules are the batch ones: the subscriber is mapped by `usage.mediation.mediate` (identifier
valid at the start, subscription state, the plan's usage charge for the service), the rate found by
the batch engine's lookup (`usage.rating.single.terms`), the price and the pocket order by
`charging.grants` (which uses the engine's pricing rules and the pocket core's order).
Committed usage becomes a `usage.RatedRecord` (key `charging:<session>`) and ledger debits
(reference the same key): the usage history, the pockets and billing see it as batch usage.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from obol.balances.models import Pocket, Source
from obol.balances.services import account_state, book_takes, lock_account
from obol.catalog.rates import rate_frames
from obol.charging import grants
from obol.charging.models import ChargingRequest, ChargingSession, ChargingSettings, LowBalanceEvent
from obol.core import clock
from obol.core.actors import Actor
from obol.core.errors import Conflict, ValidationFailed
from obol.core.fields import canonical_text
from obol.core.money import EXACT
from obol.core.periods import Cycle, Frequency
from obol.core.tenancy import current_tenant
from obol.core.units import get_unit
from obol.customers.models import BillingAccount
from obol.subscriptions.identifiers import normalise
from obol.subscriptions.models import Status, Subscription, UsageIdentifier
from obol.subscriptions.services import subscription_holding
from obol.usage.importers.base import IDENTIFIER_KINDS, RECORD_SCHEMA, SERVICES
from obol.usage.mediation import load_lookups, mediate
from obol.usage.models import RatedRecord
from obol.usage.rating.pricing import billed_one, price_one
from obol.usage.rating.single import Catalog, Terms, catalog_of, terms

# The answer codes (stable: clients branch on them) and the HTTP status the API gives each.
CODES = {
    "ok": 200,
    "no_credit": 402,  # the pockets, the overdraft or the credit limit do not cover one more unit
    "unknown_subscriber": 404,  # no subscription holds the identifier now
    "subscription_suspended": 403,
    "subscription_inactive": 403,  # pending or terminated
    "no_tariff": 422,  # no usage charge for the service in the plan, or no rate for the destination / time
    "unknown_session": 404,
    "session_finished": 409,  # terminated or expired and swept: nothing more to grant
    "account_closed": 403,
}


@dataclass(frozen=True)
class Answer:
    code: str
    message: str = ""
    session_id: str | None = None
    granted: int = 0
    valid_until: datetime | None = None
    used: int = 0
    charged: Decimal | None = None
    currency: str | None = None
    replayed: bool = False
    details: dict = field(default_factory=dict)

    @property
    def status(self) -> int:
        return CODES[self.code]

    def as_json(self) -> dict:
        return {"code": self.code, "message": self.message, "session_id": self.session_id,
                "granted": self.granted, "valid_until": self.valid_until.isoformat() if self.valid_until else None,
                "used": self.used, "charged": None if self.charged is None else canonical_text(self.charged),
                "currency": self.currency, **self.details}

    @classmethod
    def from_json(cls, data: dict) -> Answer:
        data = dict(data)
        known = {k: data.pop(k) for k in ("code", "message", "session_id", "granted", "used", "currency")}
        until, charged = data.pop("valid_until"), data.pop("charged")
        return cls(**known, valid_until=datetime.fromisoformat(until) if until else None,
                   charged=None if charged is None else Decimal(charged), replayed=True, details=data)


def settings() -> ChargingSettings:
    found = ChargingSettings.objects.first()
    return found if found is not None else ChargingSettings(tenant=current_tenant())


# --- idempotency ---------------------------------------------------------------------------------

def fingerprint(operation: str, **params) -> str:
    return hashlib.sha256(json.dumps([operation, params], sort_keys=True, default=str).encode()).hexdigest()


def _answered(request_id: str, fingerprint: str) -> Answer | None:
    if not request_id or len(request_id) > 200:
        raise ValidationFailed("request_id: every charging request needs an id of 1 to 200 characters",
                               field="request_id")
    found = ChargingRequest.objects.filter(request_id=request_id).first()
    if found is None:
        return None
    if found.fingerprint != fingerprint:
        raise Conflict(f"request_id: {request_id!r} was already used for a different request", field="request_id",
                       code="request_id_reused")
    return Answer.from_json(found.answer)


def _remember(request_id: str, operation: str, fingerprint: str, answer: Answer,
              session: ChargingSession | None = None) -> Answer:
    ChargingRequest.objects.create(tenant=current_tenant(), request_id=request_id, operation=operation,
                                   fingerprint=fingerprint, session=session, code=answer.code,
                                   answer=answer.as_json())
    return answer


def _once(operation: str, request_id: str, params: dict, work) -> Answer:
    """Run `work(fingerprint)` in one transaction unless `request_id` was answered; a concurrent
    repeat that loses the race on the request id gets the winner's answer."""
    digest = fingerprint(operation, **params)
    try:
        with transaction.atomic():
            return _answered(request_id, digest) or work(digest)
    except IntegrityError:
        found = _answered(request_id, digest)
        if found is None:
            raise
        return found


# --- what a session is priced by -------------------------------------------------------------------

@dataclass(frozen=True)
class _Mapped:
    subscription_id: int
    account_id: int
    service: str
    rate_table: str


def map_all(at: datetime) -> dict[tuple[str, str, str], tuple[_Mapped, datetime | None]]:
    """What every identifier of the tenant in scope maps to at `at`, for each service kind a plan
    charges: {(identifier kind, value, service kind): (mapping, end of the identifier's validity)}.
    One vectorised mediation for all subscribers (the lean path's snapshot); refusals are left out."""
    at = at.astimezone(ZoneInfo("UTC"))
    lookups = load_lookups()
    kinds = lookups.charges["service_kind"].unique().to_list()
    held = lookups.identifiers.filter((pl.col("valid_from") <= at) & (pl.col("valid_to").is_null()
                                                                      | (pl.col("valid_to") > at)))
    if held.is_empty() or not kinds:
        return {}
    pairs = held.select(pl.col("kind").alias("identifier_kind"), pl.col("value").alias("identifier"),
                        "valid_to").join(pl.DataFrame({"service": kinds}, schema={"service": pl.Utf8}), how="cross")
    records = pairs.select(
        pl.lit("charging").alias("source"), pl.lit(None, pl.Utf8).alias("file"), pl.lit(None, pl.Int64).alias("line"),
        pl.format("{}:{}:{}", "identifier_kind", "identifier", "service").alias("record_key"), "service",
        "identifier_kind", "identifier", pl.lit("").alias("destination"),
        pl.lit(at).cast(RECORD_SCHEMA["start"]).alias("start"), pl.lit(None, pl.Int64).alias("duration_s"),
        pl.lit(None, pl.Int64).alias("volume_bytes"), pl.lit(None, pl.Int64).alias("events"),
        pl.lit(None, pl.Utf8).alias("raw"))
    mediated, _ = mediate(records, lookups)
    ends = {(k, v): until for k, v, until in held.select("kind", "value", "valid_to").iter_rows()}
    return {(row["identifier_kind"], row["identifier"], row["service_kind"]): (
        _Mapped(row["subscription_id"], row["account_id"], row["service"], row["rate_table"]),
        ends.get((row["identifier_kind"], row["identifier"])))
        for row in mediated.select("identifier_kind", "identifier", "service_kind", "subscription_id", "account_id",
                                   "service", "rate_table").iter_rows(named=True)}


# What every subscriber maps to, per tenant and process (`map_all`): one vectorised mediation a
# minute instead of one per request. The subscription's status is read in each transaction
# (`_inactive`), so a suspension counts at once; a plan change reaches the snapshot within SNAPSHOT_TTL_S.
SNAPSHOT_TTL_S = 60
_snapshots: dict[int, tuple[float, dict]] = {}
_snapshot_lock = threading.Lock()


def snapshot_fresh() -> bool:
    taken = _snapshots.get(current_tenant().pk)
    return taken is not None and time.monotonic() - taken[0] < SNAPSHOT_TTL_S


def refresh_snapshot() -> None:
    """Take the tenant's snapshot again (the ORM; at most one thread at a time)."""
    with _snapshot_lock:
        if not snapshot_fresh():
            _snapshots[current_tenant().pk] = (time.monotonic(), map_all(clock.now()))


def from_snapshot(tenant_id: int, subscriber: str, kind: str, service_kind: str, when: datetime) -> _Mapped | None:
    """The subscriber's mapping at `when` from the tenant's snapshot, or None when the snapshot
    cannot say (not taken, another time than now, an identifier it does not hold or that has ended
    since, a refusal): then `_map` decides for this one request."""
    taken = _snapshots.get(tenant_id)
    if taken is None:
        return None
    try:
        value = normalised(kind, subscriber)
    except ValidationFailed:
        return None
    found = taken[1].get((kind, value, service_kind))
    if found is None or abs((when - clock.now()).total_seconds()) >= SNAPSHOT_TTL_S:
        return None
    return found[0] if found[1] is None or when < found[1] else None


def mapped_now(subscriber: str, kind: str, service_kind: str, when: datetime) -> _Mapped | Answer:
    """From the snapshot while the identifier is still the subscription's (one indexed query), else
    by `_map`."""
    if not snapshot_fresh():
        refresh_snapshot()
    found = from_snapshot(current_tenant().pk, subscriber, kind, service_kind, when)
    if found is not None and UsageIdentifier.objects.filter(
            kind=kind, value=normalised(kind, subscriber), subscription_id=found.subscription_id,
            valid_from__lte=when).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=when)).exists():
        return found
    return _map(subscriber, kind, service_kind, when)


def _inactive(mapped: _Mapped) -> Answer | None:
    status = Subscription.objects.filter(pk=mapped.subscription_id).values_list("status", flat=True).first()
    return None if status == Status.ACTIVE else status_refusal(status)


def normalised(kind: str, identifier: str) -> str:
    """The identifier as stored (E.164 digits for an MSISDN, ...)."""
    return normalise(kind, identifier) if kind in ("msisdn", "imsi", "username", "external_id") else identifier


def _map(identifier: str, kind: str, service_kind: str, at: datetime) -> _Mapped | Answer:
    """The subscription, service and rate table a record of `identifier` at `at` maps to, by
    mediation's own rules, or the refusal."""
    if kind not in IDENTIFIER_KINDS:
        raise ValidationFailed(f"identifier_kind: {kind!r} is not one of {', '.join(IDENTIFIER_KINDS)}",
                               field="identifier_kind")
    if service_kind not in SERVICES:
        raise ValidationFailed(f"service: {service_kind!r} is not one of {', '.join(SERVICES)}", field="service")
    value = normalised(kind, identifier)
    record = pl.DataFrame([{
        "source": "charging", "file": None, "line": None, "record_key": "charging", "service": service_kind,
        "identifier_kind": kind, "identifier": value, "destination": "", "start": at, "duration_s": None,
        "volume_bytes": None, "events": None, "raw": None}], schema=RECORD_SCHEMA)
    mediated, suspense = mediate(record, load_lookups(value))
    if mediated.height:
        row = mediated.row(0, named=True)
        return _Mapped(row["subscription_id"], row["account_id"], row["service"], row["rate_table"])
    reason = suspense["reason"][0]
    if reason == "unknown_identifier":
        return Answer("unknown_subscriber", f"no subscription holds {kind} {value} now")
    if reason == "no_usage_charge":
        return Answer("no_tariff", f"the subscriber's plan has no usage charge for {service_kind}")
    holder = subscription_holding(kind, value, at)
    return status_refusal(holder.status if holder is not None else None)


_CATALOGS: dict[tuple[int, str], tuple[float, Catalog]] = {}
CATALOG_TTL_S = 30  # a tariff load, correction or admin edit reaches real-time charging within this


def cached_catalog(tenant_id: int, table: str) -> Catalog | None:
    """The rate table's catalog while it is fresh, without touching the database; else None."""
    cached = _CATALOGS.get((tenant_id, table))
    return cached[1] if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S else None


def _catalog(table: str) -> Catalog:
    """The rate table's lookup catalog, kept in the process and built again from the database once
    it is CATALOG_TTL_S old (no query per request; building it reads every prefix)."""
    key = (current_tenant().pk, table)
    fresh = cached_catalog(*key)
    if fresh is not None:
        return fresh
    catalog = catalog_of({table: rate_frames(table, versions="all")})
    _CATALOGS[key] = (time.monotonic(), catalog)
    return catalog


def _terms(mapped: _Mapped, kind: str, destination: str, at: datetime) -> Terms | Answer:
    found = terms(_catalog(mapped.rate_table), mapped.rate_table, kind, destination, at, current_tenant().timezone)
    if isinstance(found, str):
        return Answer("no_tariff", f"rate table {mapped.rate_table} does not price {kind} to {destination or '-'} "
                                   f"at {at.isoformat()} ({found})", details={"reason": found})
    if found.tiered:
        return Answer("no_tariff", f"rate table {mapped.rate_table} prices {kind} by usage tiers, which only "
                                   "batch rating applies", details={"reason": "tiered_rate"})
    return found


# --- funds: the pockets a session may draw on ------------------------------------------------------

def _funds(account: BillingAccount, subscription_id: int, service: str, at: datetime,
           session: ChargingSession | None = None) -> tuple[grants.Funds, list[grants.PocketRow]]:
    others = ChargingSession.objects.filter(account_id=account.pk, state=ChargingSession.State.OPEN,
                                            expires_at__gt=clock.now())
    if session is not None:
        others = others.exclude(pk=session.pk)
    usable = (Q(source=Source.POSTPAID) | ~Q(balance=Decimal(0))) & (Q(valid_until__isnull=True) |
                                                                    Q(valid_until__gt=at))
    pockets = list(Pocket.objects.filter(usable, account=account))
    rows = [grants.PocketRow(p.pk, p.unit, p.balance, p.priority, p.valid_from, p.valid_until, tuple(p.services),
                             tuple(p.destination_groups), p.is_accrual, p.subscription_id) for p in pockets]
    found = grants.funds(account_state(account), rows, grants.held(list(others.values_list("holds", flat=True))),
                         subscription_id=subscription_id, service=service, is_money_unit=is_money_unit)
    return found, rows


def is_money_unit(code: str) -> bool:
    return get_unit(code).is_money


def local_moment(at: datetime | None, tz: str) -> datetime | None:
    """A request's `at`: a time without zone is the tenant's local time (as everywhere in the API)."""
    return at.replace(tzinfo=ZoneInfo(tz)) if at is not None and at.tzinfo is None else at


def _rule() -> str:
    return current_tenant().rounding


# --- the operations ----------------------------------------------------------------------------------

def _opening(operation: str, request_id: str, fingerprint: str, subscriber: str, kind: str, service_kind: str,
             destination: str, when: datetime) -> tuple[_Mapped, Terms, BillingAccount] | Answer:
    """What a start and an event do first: map the subscriber, find the rate, take the account's
    lock and check what may have changed meanwhile; the refusal (kept as the answer) or what to go on with."""
    mapped = mapped_now(subscriber, kind, service_kind, when)
    if isinstance(mapped, Answer):
        return _remember(request_id, operation, fingerprint, mapped)
    found = _terms(mapped, service_kind, destination, when)
    if isinstance(found, Answer):
        return _remember(request_id, operation, fingerprint, found)
    account = lock_account(BillingAccount(pk=mapped.account_id))
    if (again := _answered(request_id, fingerprint)) is not None:  # a repeat that waited for the lock
        return again
    if (refused := _inactive(mapped)) is not None:
        return _remember(request_id, operation, fingerprint, refused)
    if account.status == BillingAccount.Status.CLOSED:
        return _remember(request_id, operation, fingerprint, Answer("account_closed", "the account is closed"))
    return mapped, found, account


def start(actor: Actor, *, request_id: str, subscriber: str, service: str, requested: int, destination: str = "",
          identifier_kind: str = "msisdn", at: datetime | None = None) -> Answer:
    """Open a session: map the subscriber, find the rate, grant up to `requested` units (seconds,
    bytes or events) and hold what they cost."""
    actor.require_write()
    _check_units("requested", requested)
    check_texts(subscriber=subscriber, destination=destination)
    params = {"subscriber": subscriber, "service": service, "requested": requested, "destination": destination,
              "identifier_kind": identifier_kind, "at": at}

    def work(fingerprint: str) -> Answer:
        when = local_moment(at, current_tenant().timezone) or clock.now()
        opened = _opening("start", request_id, fingerprint, subscriber, identifier_kind, service, destination, when)
        if isinstance(opened, Answer):
            return opened
        mapped, found, account = opened
        config = settings()
        funds, _ = _funds(account, mapped.subscription_id, mapped.service, when)
        granted, held = grants.grant(found, 0, capped(requested, service, config), funds, at=when,
                                     service=mapped.service, rule=_rule())
        if granted == 0 and requested > 0:
            return _remember(request_id, "start", fingerprint, _no_credit(account))
        now = clock.now()
        session = ChargingSession.objects.create(
            tenant=current_tenant(), account=account, subscription_id=mapped.subscription_id, identifier=subscriber,
            service_kind=service, service=mapped.service, destination=destination or "", started_at=when,
            terms=terms_json(found), granted=granted, holds=held.holds(),
            expires_at=now + timedelta(seconds=config.grant_validity_s))
        return _remember(request_id, "start", fingerprint, _granted(session), session)

    return _once("start", request_id, params, work)


def update(actor: Actor, session_id: str, *, request_id: str, used: int, requested: int) -> Answer:
    """Report `used` units since the last report and ask for `requested` more."""
    actor.require_write()
    _check_units("used", used)
    _check_units("requested", requested)
    return _on_session("update", actor, session_id, request_id, {"used": used, "requested": requested},
                       lambda session, account: _regrant(session, account, used, requested))


def terminate(actor: Actor, session_id: str, *, request_id: str, used: int) -> Answer:
    """Report the last `used` units: the session's usage is committed and the rest released."""
    actor.require_write()
    _check_units("used", used)
    return _on_session("terminate", actor, session_id, request_id, {"used": used},
                       lambda session, account: _terminate(actor, session, account, used))


def charge_event(actor: Actor, *, request_id: str, subscriber: str, service: str, quantity: int = 1,
                 destination: str = "", identifier_kind: str = "msisdn", at: datetime | None = None) -> Answer:
    """A one-shot event (an SMS, a purchase): priced, and debited at once if the funds cover it."""
    actor.require_write()
    _check_units("quantity", quantity, least=1)
    check_texts(subscriber=subscriber, destination=destination)
    params = {"subscriber": subscriber, "service": service, "quantity": quantity, "destination": destination,
              "identifier_kind": identifier_kind, "at": at}

    def work(fingerprint: str) -> Answer:
        when = local_moment(at, current_tenant().timezone) or clock.now()
        opened = _opening("event", request_id, fingerprint, subscriber, identifier_kind, service, destination, when)
        if isinstance(opened, Answer):
            return opened
        mapped, found, account = opened
        funds, pockets = _funds(account, mapped.subscription_id, mapped.service, when)
        priced = grants.cost(found, quantity, funds, at=when, service=mapped.service, rule=_rule())
        if priced.shortfall > 0:
            return _remember(request_id, "event", fingerprint, _no_credit(account))
        key = event_key(request_id)
        _commit(actor, account, priced, pockets, key=key, subscription_id=mapped.subscription_id,
                service=mapped.service, terms=found, start=when, destination=destination)
        return _remember(request_id, "event", fingerprint, Answer(
            "ok", f"{quantity} {service} charged", granted=quantity, used=quantity, charged=priced.price,
            currency=found.currency, details={"included": priced.included}))

    return _once("event", request_id, params, work)


def sweep(actor: Actor, at: datetime | None = None) -> int:
    """Commit the reported usage of open sessions whose grant expired and release their holds.
    One transaction per session under its account's lock. Returns how many were swept."""
    actor.require_write()
    at = at or clock.now()
    due = list(ChargingSession.objects.filter(state=ChargingSession.State.OPEN, expires_at__lte=at)
               .order_by("account_id", "pk").values_list("pk", flat=True))
    swept = 0
    for pk in due:
        with transaction.atomic():
            session = ChargingSession.objects.get(pk=pk)
            account = lock_account(BillingAccount(pk=session.account_id))
            session.refresh_from_db()
            if session.state != ChargingSession.State.OPEN or session.expires_at > at:
                continue  # updated or terminated meanwhile
            _close(actor, session, account, session.used, ChargingSession.State.EXPIRED)
            swept += 1
    return swept


# --- inside the operations -------------------------------------------------------------------------

def event_key(request_id: str) -> str:
    """The record key (and ledger reference) of a one-shot event: within the 200 characters a key
    may have, however long the request id."""
    key = f"charging:event:{request_id}"
    return key if len(key) <= 200 else f"charging:event:h:{hashlib.sha256(request_id.encode()).hexdigest()}"


# Text fields end up in columns of these lengths: refused with a clear error, not cut or crashed.
LIMITS = {"subscriber": 100, "destination": 40}


def check_texts(**values) -> None:
    for name, value in values.items():
        if len(value or "") > LIMITS[name]:
            raise ValidationFailed(f"{name}: at most {LIMITS[name]} characters, not {len(value)}", field=name)


def _check_units(name: str, value, least: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValidationFailed(f"{name}: {value!r} is not a whole number of units of at least {least}", field=name)


def capped(requested: int, service: str, config: ChargingSettings) -> int:
    return min(requested, config.max_grant_s) if service == "voice" else requested


def terms_json(found: Terms) -> dict:
    return dict(found.__dict__)


def _session_terms(session: ChargingSession) -> Terms:
    return Terms(**session.terms)


def _granted(session: ChargingSession, code: str = "ok", message: str = "") -> Answer:
    return Answer(code, message, session_id=str(session.key), granted=session.granted,
                  valid_until=session.expires_at if session.granted else None, used=session.used)


def _no_credit(account: BillingAccount) -> Answer:
    return Answer("no_credit", f"the funds of account {account.number} do not cover one more unit",
                  currency=account.currency)


def _on_session(operation: str, actor: Actor, session_id: str, request_id: str, params: dict, act) -> Answer:
    def work(fingerprint: str) -> Answer:
        session = ChargingSession.objects.filter(key=session_key(session_id)).first() if session_key(session_id) else None
        if session is None:  # answered, nothing kept: an unknown session has no side effects
            return Answer("unknown_session", f"no charging session {session_id}")
        account = lock_account(BillingAccount(pk=session.account_id))
        if (again := _answered(request_id, fingerprint)) is not None:
            return again
        session.refresh_from_db()
        if session.state == ChargingSession.State.TERMINATED or (
                session.state == ChargingSession.State.EXPIRED and operation == "update"):
            return Answer("session_finished", f"session {session.key} is {session.state}",
                          session_id=str(session.key), used=session.used, charged=session.charged)
        return _remember(request_id, operation, fingerprint, act(session, account), session)

    return _once(operation, request_id, {"session": session_id, **params}, work)


def session_key(value: str) -> uuid.UUID | None:
    """The session id as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _regrant(session: ChargingSession, account: BillingAccount, used: int, requested: int) -> Answer:
    config = settings()
    session.used += used
    funds, _ = _funds(account, session.subscription_id, session.service, session.started_at, session)
    status = Subscription.objects.filter(pk=session.subscription_id).values_list("status", flat=True).first()
    code, message, granted, held = regrant(_session_terms(session), funds, status, session.used, requested,
                                           kind=session.service_kind, service=session.service,
                                           started=session.started_at, config=config, rule=_rule())
    session.granted, session.holds = granted, held.holds()
    session.expires_at = clock.now() + timedelta(seconds=config.grant_validity_s)
    session.save(update_fields=["used", "granted", "holds", "expires_at"])
    return _granted(session, code, message)


def regrant(found: Terms, funds: grants.Funds, status: str, total: int, requested: int, *, kind: str, service: str,
            started: datetime, config: ChargingSettings, rule: str) -> tuple[str, str, int, grants.Cost]:
    """An update's decision (both paths): (code, message, units granted, what the session holds).
    No more units for a closed account or a terminated subscription, nor for a suspended one when the
    tenant says so; what the session used stays held."""
    stopped = (status == Status.SUSPENDED and config.stop_open_sessions_when_suspended) or status not in (
        Status.ACTIVE, Status.SUSPENDED)
    if stopped or funds.account.closed:
        held = grants.cost(found, total, funds, at=started, service=service, rule=rule, strict=False)
        if funds.account.closed:
            return "account_closed", "the account is closed: no more units", 0, held
        return status_refusal(status).code, f"the subscription is {status}: no more units", 0, held
    granted, held = grants.grant(found, total, capped(requested, kind, config), funds, at=started, service=service,
                                 rule=rule)
    if granted == 0 and requested > 0:
        return "no_credit", "the funds do not cover one more unit", 0, held
    return "ok", "", granted, held


def status_refusal(status: str | None) -> Answer:
    """The answer for a subscription that is not active."""
    if status == Status.SUSPENDED:
        return Answer("subscription_suspended", "the subscription is suspended")
    return Answer("subscription_inactive", f"the subscription is {status or 'not active'}")


def _terminate(actor: Actor, session: ChargingSession, account: BillingAccount, used: int) -> Answer:
    total = session.used + used
    if session.state == ChargingSession.State.EXPIRED:  # swept: its reported use is committed already
        _commit_late(actor, session, account, total)
    else:
        _close(actor, session, account, total, ChargingSession.State.TERMINATED)
    return Answer("ok", f"{total} units committed", session_id=str(session.key), used=total,
                  charged=session.charged, currency=account.currency,
                  details={"included": session.included, "shortfall": str(session.shortfall)})


def _close(actor: Actor, session: ChargingSession, account: BillingAccount, total: int, state: str) -> None:
    """Commit `total` units of the session (its holds count as its own) and release the rest."""
    found = _session_terms(session)
    funds, pockets = _funds(account, session.subscription_id, session.service, session.started_at, session)
    priced = grants.cost(found, total, funds, at=session.started_at, service=session.service, rule=_rule(),
                         strict=False)
    if total > 0:
        _commit(actor, account, priced, pockets, key=session.record_key, subscription_id=session.subscription_id,
                service=session.service, terms=found, start=session.started_at, destination=session.destination,
                session=session)
    session.used, session.granted, session.holds, session.state = total, 0, {}, state
    session.charged, session.included, session.shortfall = priced.price, priced.included, priced.shortfall
    session.ended_at = clock.now()
    session.save(update_fields=["used", "granted", "holds", "state", "charged", "included", "shortfall",
                                "ended_at"])


def _commit_late(actor: Actor, session: ChargingSession, account: BillingAccount, total: int) -> None:
    """A terminate after the sweeper committed the session: the units reported beyond those are
    charged as the difference in price (money only; allowances were settled at the sweep), booked at
    the session's start like its other debits; the session's rated record says the whole of it."""
    found = _session_terms(session)
    charged_before = session.used - session.included
    extra = total - session.used
    if extra > 0:
        def billed(units):
            return billed_one(found.kind, units, found.first_increment_s, found.next_increment_s,
                              found.rounding_factor)

        def micros(units):
            return price_one(units, billed(units), found.price_micros, found.factor, found.minimum_charge_micros,
                             found.connection_fee_micros, _rule())
        charged = charged_before + extra
        delta = micros(charged) - micros(charged_before)
        money_terms = Terms(**{**session.terms, "kind": "event", "price_micros": delta, "factor": 1,
                               "minimum_charge_micros": 0, "connection_fee_micros": 0})
        funds, rows = _funds(account, session.subscription_id, session.service, session.started_at, session)
        funds = grants.Funds(funds.account, (), funds.money, funds.owed)
        priced = grants.cost(money_terms, 1 if delta else 0, funds, at=session.started_at, service=session.service,
                             rule=_rule(), strict=False)
        if priced.takes:
            book_takes(actor, account, [(t.pocket_id, t.amount) for t in priced.takes],
                       reference=f"{session.record_key}:late", service=session.service, at=session.started_at,
                       reason="usage (late report)")
        session.charged = EXACT.add(session.charged, priced.price)
        session.shortfall = EXACT.add(session.shortfall, priced.shortfall)
        whole = grants.Cost(total, session.included, charged, billed(charged), micros(charged), (), session.shortfall)
        fields = rated_record(account.pk, account.bill_cycle_day, whole, rows, key=session.record_key,
                              subscription_id=session.subscription_id, service=session.service, terms=found,
                              start=session.started_at, destination=session.destination,
                              tz=current_tenant().timezone)
        late = accrued_micros(priced)  # what the late units accrued, on top of what the sweep kept
        updated = RatedRecord.objects.filter(record_key=session.record_key).update(
            **{k: v for k, v in fields.items() if k in ("quantity", "charged", "billed", "price_micros", "uncovered")},
            accrued_micros=F("accrued_micros") + late)
        if not updated:  # swept with nothing reported: no record yet
            RatedRecord.objects.create(tenant=current_tenant(), **{**fields, "accrued_micros": late})
    session.used, session.state, session.ended_at = total, ChargingSession.State.TERMINATED, clock.now()
    session.save(update_fields=["used", "state", "charged", "shortfall", "ended_at"])


def _micros(value: Decimal) -> int:
    return int(value.scaleb(6))


def _commit(actor: Actor, account: BillingAccount, priced: grants.Cost, pockets: list[grants.PocketRow], *,
            key: str, subscription_id: int, service: str, terms: Terms, start: datetime, destination: str,
            session: ChargingSession | None = None) -> None:
    """Book the cost's takes and keep the usage as a rated record (as batch rating would)."""
    if priced.takes:
        book_takes(actor, account, [(t.pocket_id, t.amount) for t in priced.takes], reference=key, service=service,
                   at=start, reason="usage (real-time)")
    RatedRecord.objects.create(tenant=current_tenant(), **rated_record(account.pk, account.bill_cycle_day, priced,
                                                                       pockets, key=key,
                                                                       subscription_id=subscription_id,
                                                                       service=service, terms=terms, start=start,
                                                                       destination=destination,
                                                                       tz=current_tenant().timezone))
    threshold = settings().low_balance_threshold
    after = grants.money_after(pockets, account.currency, priced.takes)
    if account.mode != BillingAccount.Mode.POSTPAID and grants.low_balance(
            grants.money_left(pockets, account.currency), after, threshold):
        LowBalanceEvent.objects.create(tenant=current_tenant(), account=account, balance=after, threshold=threshold,
                                       currency=account.currency, session=session)


def rated_record(account_id: int, bill_cycle_day: int, priced: grants.Cost, pockets: list[grants.PocketRow], *,
                 key: str, subscription_id: int, service: str, terms: Terms, start: datetime,
                 destination: str, tz: str) -> dict:
    """The committed usage as a rated record's fields (both charging paths store these)."""
    units = {p.id for p in pockets if not p.is_accrual and not is_money_unit(p.unit)}
    zone = ZoneInfo(tz)
    cycle = Cycle(Frequency.MONTH, day=bill_cycle_day).period_containing(start.astimezone(zone).date())
    return dict(
        record_key=key, account_id=account_id, subscription_id=subscription_id, service=service,
        rate_table=terms.rate_table, cycle_start=cycle.start, start=start, quantity=priced.quantity,
        destination=destination or "", destination_group=terms.destination_group, time_band=terms.time_band,
        included=priced.included, charged=priced.charged, billed=priced.billed, price_micros=priced.price_micros,
        currency=terms.currency, uncovered=priced.shortfall > 0, accrued_micros=accrued_micros(priced),
        takes=";".join(f"{t.pocket_id}:{int(t.amount)}" for t in priced.takes if t.pocket_id in units))


def accrued_micros(priced: grants.Cost) -> int:
    """The money of a cost that went to the unbilled-usage pocket, in millionths (what invoices bill)."""
    return _micros(sum((t.amount for t in priced.takes if t.pocket_id == grants.ACCRUAL), Decimal(0)))
