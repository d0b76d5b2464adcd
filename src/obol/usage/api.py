"""REST routes for usage: an account's rated records and their summary, the files imported and the
open suspense. Prices are stored in micro-units and answered as exact decimal strings."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, QuerySet, Sum
from ninja import Field, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from obol.api.schemas import ERRORS
from obol.catalog.rates import from_micros
from obol.core.errors import ValidationFailed
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount
from obol.usage.models import RatedRecord, SuspendedRecord, UsageFile

router = Router(tags=["usage"])

SUMMED = ("quantity", "included", "charged", "billed", "price_micros")


price = from_micros  # micro-units -> currency amount, exactly


class Period(Schema):
    from_: datetime | None = Field(None, alias="from", description="From this moment on (inclusive); a time "
                                   "without zone is the tenant's local time")
    to: datetime | None = Field(None, description="Up to this moment (exclusive)")


class UsageFilter(Period):
    service: str | None = Field(None, description="voice, sms, data, ...")
    subscription_id: int | None = None


def _local(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=ZoneInfo(current_tenant().timezone))
    return moment


def _records(account_id: int, period: Period) -> QuerySet:
    account = BillingAccount.objects.get_or_404("account", pk=account_id)
    start, end = _local(period.from_), _local(period.to)
    if start is not None and end is not None and end <= start:
        raise ValidationFailed("to: must be after from", field="to")
    records = RatedRecord.objects.filter(account=account)
    if start is not None:
        records = records.filter(start__gte=start)
    if end is not None:
        records = records.filter(start__lt=end)
    return records


class UsageRecordOut(Schema):
    key: str = Field(..., alias="record_key")
    start: datetime
    subscription_id: int
    service: str
    destination: str
    destination_group: str
    time_band: str
    quantity: int = Field(..., description="Seconds, bytes or events")
    included: int = Field(..., description="Paid by allowances")
    charged: int
    billed: int = Field(..., description="Charged quantity after increments")
    price: Decimal = Field(..., description="In `currency`, 6 decimals at most")
    currency: str
    uncovered: bool = Field(..., description="Prepaid: the money pockets did not cover it")

    @staticmethod
    def resolve_price(record: RatedRecord) -> Decimal:
        return price(record.price_micros)


class UsageSummaryOut(Schema):
    subscription_id: int
    service: str
    destination_group: str
    currency: str
    count: int
    quantity: int
    included: int
    charged: int
    billed: int
    price: Decimal


class UsageFileOut(Schema):
    id: int
    name: str
    format: str
    state: str
    read: int
    rated: int
    suspended: int
    duplicates: int
    skipped: int
    started_at: datetime
    finished_at: datetime | None
    error: str


class ReasonCount(Schema):
    reason: str
    count: int


class SuspendedOut(Schema):
    id: int
    file_id: int | None
    line: int | None
    record_key: str
    reason: str
    field: str
    message: str
    raw: str
    record: dict | None
    created_at: datetime


class SuspenseOut(Schema):
    by_reason: list[ReasonCount] = Field(..., description="Open suspense records per reason, most first")
    reason: str | None = Field(None, description="The reason whose records are listed")
    count: int = Field(0, description="Open records of that reason")
    records: list[SuspendedOut] = []


@router.get("/accounts/{account_id}/usage", response=list[UsageRecordOut],
            summary="An account's rated usage records, oldest first")
@paginate(LimitOffsetPagination)
def list_usage(request, account_id: int, filters: Query[UsageFilter]):
    records = _records(account_id, filters)
    if filters.service:
        records = records.filter(service=filters.service)
    if filters.subscription_id is not None:
        records = records.filter(subscription_id=filters.subscription_id)
    return records.order_by("start", "id")


@router.get("/accounts/{account_id}/usage/summary", response={200: list[UsageSummaryOut], **ERRORS},
            summary="An account's usage per subscription, service and destination group")
def usage_summary(request, account_id: int, period: Query[Period]):
    groups = (_records(account_id, period)
              .values("subscription_id", "service", "destination_group", "currency")
              .annotate(count=Count("id"), **{name: Sum(name) for name in SUMMED})
              .order_by("subscription_id", "service", "destination_group", "currency"))
    return [{**{k: row[k] for k in ("subscription_id", "service", "destination_group", "currency")},
             "count": row["count"], **{k: int(row[k]) for k in SUMMED if k != "price_micros"},
             "price": price(row["price_micros"])} for row in groups]


@router.get("/usage/files", response=list[UsageFileOut], summary="Usage files imported, newest first")
@paginate(LimitOffsetPagination)
def list_files(request, state: str | None = None):
    files = UsageFile.objects.all()
    return files.filter(state=state) if state else files


@router.get("/usage/suspense", response={200: SuspenseOut, **ERRORS},
            summary="Open suspense by reason, and the open records of one reason")
def suspense(request, reason: str | None = None, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    open_rows = SuspendedRecord.objects.filter(state=SuspendedRecord.State.OPEN)
    by_reason = open_rows.values("reason").annotate(count=Count("id")).order_by("-count", "reason")
    answer = {"by_reason": list(by_reason), "reason": reason, "count": 0, "records": []}
    if reason:
        rows = open_rows.filter(reason=reason).order_by("file_id", "line", "id")
        answer["count"] = rows.count()
        answer["records"] = list(rows[offset:offset + limit])
    return answer
