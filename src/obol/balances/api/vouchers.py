"""REST routes: redeem a voucher into an account; voucher batches (admin role): list, and generate
(the plain codes are in that one answer only). Blocking a batch is in the back office and
`obol vouchers block`."""
import ipaddress
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from ninja import Field, Router, Schema
from ninja.conf import settings as ninja_settings
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status
from ninja.throttling import BaseThrottle

from obol.api.idempotency import idempotent
from obol.api.schemas import ERRORS, Error
from obol.balances import vouchers
from obol.balances.api.pockets import PocketOut
from obol.balances.models import VoucherBatch
from obol.core.errors import ObolError, ValidationFailed
from obol.core.money import Amount
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount

router = Router(tags=["balances"])


class RedeemIn(Schema):
    code: str = Field(..., min_length=1, max_length=64, description="As printed, e.g. K7QX-94MZ-T3PV-WH2C")


class BatchIn(Schema):
    name: str | None = Field(None, max_length=120, description="Unique in the tenant; default VB-000001, ...")
    count: int = Field(..., ge=1, le=vouchers.MAX_BATCH)
    value: Decimal = Field(..., description="What one voucher is worth, in `unit`")
    unit: str | None = Field(None, description="EUR, BTC, minute, sms, megabyte, point, ...; default: the "
                                               "tenant's currency")
    expires: date | None = Field(None, description="Last day a voucher can be redeemed (tenant time zone)")
    expires_at: datetime | None = Field(None, description="Or: the moment from which it cannot (exclusive)")
    validity_days: int | None = Field(None, ge=1,
                                      description="The pocket lasts this many days after redemption")
    services: list[str] = Field([], description="Service codes the pocket pays for; empty: any")


class BatchOut(Schema):
    id: int
    name: str
    value: Decimal
    unit: str
    validity_days: int | None
    services: list[str]
    expires_at: datetime
    expires: date = Field(..., description="Last day a voucher can be redeemed (tenant time zone)")
    status: str
    status_reason: str
    issued: int
    redeemed: int
    expired: int
    available: int
    created_at: datetime
    created_by: str

    @staticmethod
    def resolve_expires(batch) -> date:
        return vouchers.last_valid_day(batch)

    @staticmethod
    def resolve_redeemed(batch) -> int:
        return _counts(batch)["redeemed"]

    @staticmethod
    def resolve_expired(batch) -> int:
        return _counts(batch)["expired"]

    @staticmethod
    def resolve_available(batch) -> int:
        return _counts(batch)["available"]


class VoucherRow(Schema):
    code: str
    value: str
    unit: str
    expires: str


class BatchCreatedOut(Schema):
    batch: BatchOut
    codes_included: bool = Field(..., description="False on a repeat of the request: codes are shown once")
    codes: list[str]
    vouchers: list[VoucherRow] = Field(...,
                                       description="The rows of the printing CSV: code, value, unit, expires")
    notice: str


def _counts(batch) -> dict:
    if not hasattr(batch, "_counts"):
        batch._counts = vouchers.counts(batch)
    return batch._counts


def _batch(batch_id: int) -> VoucherBatch:
    return vouchers.with_counts(VoucherBatch.objects.all()).get_or_404("voucher batch", pk=batch_id)


def _client_ip(request) -> str | None:
    """The caller's address for the rate limit. X-Forwarded-For is believed only behind as many
    proxies as NINJA_NUM_PROXIES says (Ninja's own rule); without that setting it could be forged."""
    trusted = ninja_settings.NUM_PROXIES
    ident = BaseThrottle().get_ident(request) if trusted else request.META.get("REMOTE_ADDR")
    try:
        return str(ipaddress.ip_address((ident or "").strip()))
    except ValueError:
        return None


@idempotent(PocketOut)
def _redeem(request, account_id: int, payload: RedeemIn):
    account = BillingAccount.objects.get_or_404("account", pk=account_id)
    return vouchers.redeem(request.actor, account, payload.code, ip=_client_ip(request))


@router.post("/accounts/{account_id}/vouchers/redeem", response={201: PocketOut, **ERRORS, 429: Error},
             summary="Redeem a voucher code: answers the pocket it opened")
def redeem_voucher(request, account_id: int, payload: RedeemIn):
    try:
        return _redeem(request, account_id, payload)
    except ObolError as error:
        # With an Idempotency-Key the work runs in the key's transaction, which the error rolled
        # back, taking the failed attempt's row along: count it again, outside.
        vouchers.keep_failure(error)
        raise


@router.get("/voucher-batches", response={200: list[BatchOut], **ERRORS},
            summary="Voucher batches (admin role)")
@paginate(LimitOffsetPagination)
def list_batches(request, status: Literal["active", "blocked", "cancelled"] | None = None):
    vouchers.require_admin(request.actor)
    batches = vouchers.with_counts(VoucherBatch.objects.all())
    return batches.filter(status=status) if status else batches


@idempotent(BatchOut)
def _generate(request, payload: BatchIn):
    if (payload.expires is None) == (payload.expires_at is None):
        raise ValidationFailed("expires: give either expires (last day) or expires_at (moment)",
                               field="expires")
    batch, codes = vouchers.generate_batch(
        request.actor, name=payload.name, count=payload.count,
        value=Amount(payload.value, payload.unit or current_tenant().default_currency),
        expires_at=payload.expires or payload.expires_at, validity_days=payload.validity_days,
        services=payload.services,
    )
    request.voucher_codes = codes  # handed to the caller below; never part of the stored idempotent answer
    return batch


@router.post("/voucher-batches", response={201: BatchCreatedOut, **ERRORS},
             summary="Generate a voucher batch (admin role): the only answer that shows its codes")
def create_batch(request, payload: BatchIn):
    vouchers.require_admin(request.actor)
    answer = _generate(request, payload)
    batch_id = answer.value.pk if isinstance(answer, Status) else json.loads(answer.content)["id"]
    batch = _batch(batch_id)
    codes = getattr(request, "voucher_codes", None)
    notice = ("These codes are shown only now: Obol keeps a keyed hash of each, never the code."
              if codes is not None else
              "This repeats an earlier request: its codes were shown only in the first answer. If they were "
              "lost, block this batch and generate a new one.")
    return Status(201, {"batch": batch, "codes_included": codes is not None, "codes": codes or [],
                        "vouchers": vouchers.csv_rows(batch, codes or []), "notice": notice})
