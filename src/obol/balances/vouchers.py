"""Vouchers: generate batches of unguessable codes, redeem a code into a pocket exactly once,
block or cancel a batch, export a batch's codes for printing.

- Codes are 16 symbols from a 32-symbol alphabet without 0/O/1/I (80 random bits from `secrets`),
  shown as `K7QX-94MZ-T3PV-WH2C`. Only an HMAC-SHA256 of the code (keyed with SECRET_KEY; codes
  hashed with a key of SECRET_KEY_FALLBACKS are still found) and its last four symbols are stored:
  `generate_batch` returns the plain codes once, and nothing can show them again.
- `redeem` opens a pocket through the pocket core (`open_pocket`, grant key `voucher:<id>`) and
  marks the voucher redeemed in the same transaction, with the voucher row locked and a
  conditional update, so of any number of concurrent attempts exactly one wins.
- Refused attempts are counted in `RedemptionFailure` rows: MAX_FAILURES within FAILURE_WINDOW per
  account, or per IP address, and further attempts are refused with `too_many_attempts` until the
  oldest of them leaves the window. A success resets nothing.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import ipaddress
import secrets
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q

from obol.balances.models import Pocket, RedemptionFailure, Source, Voucher, VoucherBatch
from obol.balances.services import lock_account, open_pocket
from obol.catalog.models import Service
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.errors import Conflict, Forbidden, IllegalTransition, NotFound, ObolError, ValidationFailed
from obol.core.fields import canonical_text
from obol.core.money import Amount
from obol.core.numbering import next_number
from obol.core.roles import Role
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols (5 bits each): no 0/O, no 1/I
CODE_LENGTH = 16  # 80 bits
GROUP = 4
MAX_BATCH = 100_000
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
CSV_COLUMNS = ("code", "value", "unit", "expires")

Status = VoucherBatch.Status


class TooManyAttempts(Forbidden):
    code = "too_many_attempts"
    status = 429


# -- codes ---------------------------------------------------------------------------------------

def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + GROUP] for i in range(0, CODE_LENGTH, GROUP))


def normalise_code(text: str) -> str | None:
    """The code as stored (upper case, no dashes or spaces), or None when it cannot be a code."""
    compact = "".join(str(text or "").split()).replace("-", "").upper()
    if len(compact) != CODE_LENGTH or any(ch not in ALPHABET for ch in compact):
        return None
    return compact


def _hash(compact: str, key: str) -> str:
    return hmac.new(key.encode(), b"obol-voucher:" + compact.encode(), hashlib.sha256).hexdigest()


def code_hash(code: str) -> str:
    """The keyed hash a voucher is stored under (with the current SECRET_KEY)."""
    compact = normalise_code(code)
    if compact is None:
        raise ValidationFailed(f"code: {code!r} is not a voucher code", field="code", code="voucher_invalid")
    return _hash(compact, settings.SECRET_KEY)


def _lookup_hashes(compact: str) -> list[str]:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [_hash(compact, key) for key in keys]


# -- batches -------------------------------------------------------------------------------------

def require_admin(actor: Actor) -> None:
    if actor.role != Role.ADMIN:
        raise Forbidden(f"{actor.label} has the {actor.role} role; voucher batches need the admin role")


def expiry_moment(when: date | datetime, tz: str) -> datetime:
    """A day means 'valid through that day' (the moment returned is the start of the next day in the
    tenant's time zone); a time without a zone is read in the tenant's time zone."""
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(tz))
    return datetime.combine(when + timedelta(days=1), time(0), tzinfo=ZoneInfo(tz))


def last_valid_day(batch: VoucherBatch) -> date:
    """The last day (tenant time zone) a voucher of the batch can be redeemed: what is printed."""
    last_moment = batch.expires_at - timedelta(microseconds=1)
    return last_moment.astimezone(ZoneInfo(current_tenant().timezone)).date()


def _check_batch(*, name: str, count: int, value: Amount, expires_at: datetime, validity_days,
                 services) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
        raise ValidationFailed(f"count: between 1 and {MAX_BATCH} vouchers, not {count!r}", field="count")
    if value.value <= 0:
        raise ValidationFailed(f"value: a voucher must be worth more than zero, not {value}", field="value")
    if round_amount(value, RoundingPlace.ALLOWANCE) != value:
        raise ValidationFailed(f"value: {value} has more decimals than {value.unit.code} allows "
                               f"({value.unit.decimals})", field="value", code="invalid_amount")
    if expires_at <= clock.now():
        raise ValidationFailed(f"expires_at: {expires_at.isoformat()} is not in the future",
                               field="expires_at")
    if validity_days is not None and (isinstance(validity_days, bool) or validity_days < 1):
        raise ValidationFailed("validity_days: at least 1 day, or none for no end", field="validity_days")
    known = Service.objects.filter(code__in=services).values_list("code", flat=True)
    unknown = sorted(set(services) - set(known))
    if unknown:
        raise ValidationFailed(f"services: no service {', '.join(unknown)} in the catalog", field="services")
    if len(name) > 120:
        raise ValidationFailed("name: at most 120 characters", field="name")
    if VoucherBatch.objects.filter(name=name).exists():
        raise ValidationFailed(f"name: a voucher batch named {name!r} exists already", field="name",
                               code="invalid_duplicate")


def _distinct_codes(count: int) -> list[str]:
    # 80 random bits: a clash with another code of the tenant is far less likely than a disk error,
    # and the unique constraint on (tenant, code_hash) would refuse the batch rather than share a code.
    codes: dict[str, None] = {}
    while len(codes) < count:
        codes[new_code()] = None
    return list(codes)


@transaction.atomic
def generate_batch(actor: Actor, *, name: str | None = None, count: int, value: Amount,
                   expires_at: date | datetime, validity_days: int | None = None,
                   services=()) -> tuple[VoucherBatch, list[str]]:
    """Create a batch of `count` vouchers worth `value` each, redeemable until `expires_at` (a day:
    through that day). Returns the batch and the plain codes: the only time they exist."""
    require_admin(actor)
    tenant = current_tenant()
    services = sorted({str(s) for s in services})
    name = (name or "").strip() or next_number("voucher_batch", "VB-")
    expires_at = expiry_moment(expires_at, tenant.timezone)
    _check_batch(name=name, count=count, value=value, expires_at=expires_at, validity_days=validity_days,
                 services=services)
    batch = VoucherBatch.objects.create(
        tenant=tenant, name=name, value=value.value, unit=value.unit.code, validity_days=validity_days,
        services=services, expires_at=expires_at, issued=count, created_by=actor.label[:200],
    )
    codes = _distinct_codes(count)
    Voucher.objects.bulk_create(
        [Voucher(tenant=tenant, batch=batch, code_hash=code_hash(code), hint=code[-GROUP:])
         for code in codes],
        batch_size=2000,
    )
    audit.record(actor, "voucher_batch.generate", batch,
                 {"count": count, "value": str(value), "expires_at": expires_at,
                  "validity_days": validity_days, "services": services})
    return batch, codes


def find_batch(ref: str | int) -> VoucherBatch:
    """A batch by name, or by id."""
    batch = VoucherBatch.objects.filter(name=str(ref)).first()
    if batch is None and str(ref).isdigit():
        batch = VoucherBatch.objects.filter(pk=int(ref)).first()
    if batch is None:
        raise NotFound(f"voucher batch {ref!r} not found")
    return batch


_TRANSITIONS = {
    Status.BLOCKED: {Status.ACTIVE},
    Status.ACTIVE: {Status.BLOCKED},
    Status.CANCELLED: {Status.ACTIVE, Status.BLOCKED},
}


@transaction.atomic
def _set_status(actor: Actor, batch: VoucherBatch, status: str, reason: str) -> VoucherBatch:
    require_admin(actor)
    batch = VoucherBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.status == status:
        return batch
    if batch.status not in _TRANSITIONS[status]:
        raise IllegalTransition(f"voucher batch {batch.name} is {batch.status}; it cannot become {status}",
                                field="status")
    before = batch.status
    batch.status, batch.status_reason = status, reason
    batch.save(update_fields=["status", "status_reason"])
    audit.record(actor, f"voucher_batch.{status}", batch, {"status": [before, status]}, reason)
    return batch


def block_batch(actor: Actor, batch: VoucherBatch, *, reason: str = "") -> VoucherBatch:
    """Stop redemptions of the batch's vouchers (until unblocked)."""
    return _set_status(actor, batch, Status.BLOCKED, reason)


def unblock_batch(actor: Actor, batch: VoucherBatch, *, reason: str = "") -> VoucherBatch:
    return _set_status(actor, batch, Status.ACTIVE, reason)


def cancel_batch(actor: Actor, batch: VoucherBatch, *, reason: str = "") -> VoucherBatch:
    """Stop redemptions for good (redeemed vouchers keep their pockets)."""
    return _set_status(actor, batch, Status.CANCELLED, reason)


def with_counts(batches):
    """Batches annotated with `redeemed_count` (how many of their vouchers were redeemed)."""
    return batches.annotate(redeemed_count=Count("vouchers", filter=Q(vouchers__redeemed_at__isnull=False)))


def counts(batch: VoucherBatch) -> dict[str, int]:
    """issued, redeemed, expired (not redeemed before the batch expired) and available."""
    redeemed = getattr(batch, "redeemed_count", None)
    if redeemed is None:
        redeemed = batch.vouchers.filter(redeemed_at__isnull=False).count()
    left = batch.issued - redeemed
    expired = left if batch.is_expired() else 0
    available = left - expired if batch.status == Status.ACTIVE else 0
    return {"issued": batch.issued, "redeemed": redeemed, "expired": expired, "available": available}


# -- printing ------------------------------------------------------------------------------------

def face_value(batch: VoucherBatch) -> Decimal:
    """What one voucher is worth, as printed: money with its minor units (10 EUR is 10.00), other
    units as they are (60 minutes is 60), the same on every database."""
    amount = Amount(batch.value, batch.unit)
    if amount.unit.is_money:  # exact already (checked at generation): this only adds the zeros
        return round_amount(amount, RoundingPlace.ALLOWANCE).value
    return Decimal(canonical_text(amount.value))


def csv_rows(batch: VoucherBatch, codes: list[str]) -> list[dict[str, str]]:
    """One row per code: code, value, unit, expires (the last day it can be redeemed)."""
    value, unit, expires = format(face_value(batch), "f"), batch.unit, last_valid_day(batch).isoformat()
    return [{"code": code, "value": value, "unit": unit, "expires": expires} for code in codes]


def write_csv(out, batch: VoucherBatch, codes: list[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(batch, codes))


# -- redemption ----------------------------------------------------------------------------------

def _refuse_if_limited(account: BillingAccount, ip: str | None, now: datetime) -> None:
    recent = RedemptionFailure.objects.filter(at__gt=now - FAILURE_WINDOW)
    for what, failures in (("this account", recent.filter(account=account)),
                           (f"address {ip}", recent.filter(ip=ip) if ip else None)):
        if failures is None:
            continue
        times = list(failures.order_by("-at").values_list("at", flat=True)[:MAX_FAILURES])
        if len(times) >= MAX_FAILURES:
            retry = (times[-1] + FAILURE_WINDOW).isoformat(timespec="seconds")
            raise TooManyAttempts(f"too many failed voucher attempts from {what}: try again after {retry}",
                                  field="code")


def _address(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        raise ValidationFailed(f"ip: {ip!r} is not an IP address", field="ip") from None


def _locked_voucher(code: str) -> Voucher | None:
    compact = normalise_code(code)
    if compact is None:
        return None
    return (Voucher.objects.select_for_update(of=("self",)).select_related("batch")
            .filter(code_hash__in=_lookup_hashes(compact)).first())


def _refusal(voucher: Voucher | None, account: BillingAccount, now: datetime) -> ObolError | None:
    if voucher is None:  # unknown here: whether another tenant has it is never looked at
        return ValidationFailed("this voucher code is not valid", field="code", code="voucher_invalid")
    batch = voucher.batch
    if voucher.redeemed_at is not None:
        return _used(voucher)
    if batch.status != Status.ACTIVE:
        return Conflict(f"voucher …{voucher.hint} is {batch.status}", field="code", code="voucher_blocked")
    if batch.is_expired(now):
        return Conflict(f"voucher …{voucher.hint} expired on {last_valid_day(batch).isoformat()}",
                        field="code", code="voucher_expired")
    unit = Amount(batch.value, batch.unit).unit
    if unit.kind == "currency" and unit.code != account.currency:
        return ValidationFailed(
            f"voucher …{voucher.hint} is worth {unit.code}; account {account.number} holds "
            f"{account.currency}",
            field="code", code="voucher_currency_mismatch")
    return None


def _used(voucher: Voucher) -> ObolError:
    return Conflict(f"voucher …{voucher.hint} was already redeemed", field="code", code="voucher_used")


def _claim(voucher: Voucher, account: BillingAccount, ip: str | None, now: datetime) -> bool:
    """Mark the voucher redeemed if nobody did yet (the row is locked too; this holds without the lock)."""
    return bool(Voucher.objects.filter(pk=voucher.pk, redeemed_at__isnull=True)
                .update(redeemed_at=now, account=account, redeemed_ip=ip))


def _credit(actor: Actor, account: BillingAccount, voucher: Voucher, now: datetime) -> Pocket:
    batch = voucher.batch
    amount = Amount(batch.value, batch.unit)
    pocket, created = open_pocket(
        actor, account, amount, source=Source.VOUCHER, label=batch.name, valid_from=now,
        valid_until=now + timedelta(days=batch.validity_days) if batch.validity_days else None,
        services=batch.services, grant_key=f"voucher:{voucher.pk}", reference=f"voucher:{voucher.pk}",
        reason=f"voucher …{voucher.hint} of batch {batch.name}",
    )
    if not created:  # the grant exists, so the voucher was redeemed: undo the claim with the transaction
        raise _used(voucher)
    Voucher.objects.filter(pk=voucher.pk).update(pocket=pocket)
    audit.record(actor, "account.voucher_redeemed", account,
                 {"voucher": voucher.pk, "hint": voucher.hint, "batch": batch.name, "value": str(amount),
                  "pocket": pocket.pk})
    return pocket


def _count_failure(account: BillingAccount, ip: str | None, reason: str, now: datetime) -> dict:
    row = RedemptionFailure.objects.create(account=account, ip=ip, reason=reason, at=now)
    return {"id": row.pk, "account_id": account.pk, "ip": ip, "reason": reason, "at": now}


def redeem(actor: Actor, account: BillingAccount, code: str, *, ip: str | None = None) -> Pocket:
    """Redeem `code` for `account`: a new pocket holding the voucher's value, or an error with code
    voucher_invalid, voucher_used, voucher_expired, voucher_blocked, voucher_currency_mismatch or
    too_many_attempts. A refusal is counted (committed before the error is raised); a caller that
    wraps this in its own transaction and rolls it back calls `keep_failure(error)` afterwards."""
    actor.require_write()
    ip = _address(ip)
    now = clock.now()
    with transaction.atomic():
        account = lock_account(account)  # attempts on one account queue: its count is exact
        if account.status != BillingAccount.Status.ACTIVE:
            raise Conflict(f"account {account.number} is {account.status}", field="account",
                           code="account_closed")
        _refuse_if_limited(account, ip, now)
        voucher = _locked_voucher(code)
        error = _refusal(voucher, account, now)
        if error is None and not _claim(voucher, account, ip, now):
            error = _used(voucher)
        if error is None:
            return _credit(actor, account, voucher, now)
        error.failure = _count_failure(account, ip, error.code, now)
    raise error


def keep_failure(error: Exception) -> None:
    """Count the refusal `error` again if the caller's rolled-back transaction took its row along."""
    failure = getattr(error, "failure", None)
    if failure is None:
        return
    row_id, fields = failure["id"], {k: v for k, v in failure.items() if k != "id"}
    with transaction.atomic():
        if not RedemptionFailure.objects.filter(pk=row_id, **fields).exists():
            RedemptionFailure.objects.create(**fields)


def prune_failures(actor: Actor, *, older_than: timedelta = timedelta(days=30)) -> int:
    """Delete failed-attempt rows older than `older_than` (at least the rate-limit window)."""
    actor.require_write()
    cutoff = clock.now() - max(older_than, FAILURE_WINDOW)
    deleted, _ = RedemptionFailure.objects.filter(at__lt=cutoff).delete()
    return deleted
