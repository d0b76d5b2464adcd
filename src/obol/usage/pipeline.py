"""The usage mass process for one file: read → mediate → rate → book and store, in chunks.

`import_file` is what `obol usage import` runs for each file. It is idempotent and resumable:

- a file is known by its checksum; a file imported before is skipped unless forced;
- the records are rated together (allowances are consumed in time order across the file), then
  stored in chunks in time order, each chunk in one transaction with its pocket bookings, its
  suspense rows and the file's counters; a crash loses at most the chunk in flight;
- a rerun of an unfinished file skips what its committed chunks stored and rates the rest
  against the pockets as those chunks left them, so every total equals a clean run's;
- a record whose key was rated before (from any file) is a duplicate and is suspended, never
  charged twice.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from django.db import connection, transaction
from django.db.models import Sum

from obol.balances import batch as batch_booking
from obol.balances import services as balances
from obol.balances.models import Pocket, Source
from obol.catalog.rates import from_micros, rate_frames, to_micros
from obol.catalog.rate_models import RateTable
from obol.core import audit, clock
from obol.core.actors import Actor
from obol.core.bulk import filter_in, insert_frame, query_frame, temporary_table
from obol.core.errors import Conflict, ObolError, ValidationFailed
from obol.core.locks import exclusive
from obol.core.money import Amount
from obol.core.periods import Cycle, Frequency
from obol.core.rounding import RoundingPlace, round_amount
from obol.core.tenancy import current_tenant
from obol.core.units import get_unit
from obol.customers.models import BillingAccount
from obol.notifications import services as alerts
from obol.usage.importers import get_importer
from obol.usage.mediation import RECORD_FIELDS, TS, load_lookups, mediate
from obol.usage.models import RatedRecord, SuspendedRecord, UsageFile
from obol.usage.rating import cover_with_money, rate

CHUNK = 50_000  # records per transaction
PART = 1_000_000  # records rated together at most (bounds memory)


@dataclass
class ImportSummary:
    file: str
    state: str
    read: int = 0
    rated: int = 0
    suspended: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    skipped: int = 0
    charged_micros: int = 0
    uncovered: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        return {**self.__dict__, "suspended_total": sum(self.suspended.values())}


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_row(path: Path, digest: str, fmt: str, force: bool) -> tuple[UsageFile, str]:
    """The file's row and what to do: "new", "resume" (unfinished before), "force" (done before,
    imported again: what it rated is now a duplicate) or "skip" (done before)."""
    row = UsageFile.objects.filter(checksum=digest).first()
    if row is None:
        return UsageFile.objects.create(tenant=current_tenant(), name=str(path), checksum=digest,
                                        size=path.stat().st_size, format=fmt), "new"
    if row.state == UsageFile.State.IMPORTING:
        return row, "resume"
    if row.state == UsageFile.State.DONE and not force:
        return row, "skip"
    if row.state == UsageFile.State.DONE and force:
        UsageFile.objects.filter(pk=row.pk).update(
            state=UsageFile.State.IMPORTING, read=0, rated=0, suspended=0, duplicates=0, skipped=0, chunks_done=0,
            started_at=clock.now(), finished_at=None, error="")
        row.refresh_from_db()
        return row, "force"
    UsageFile.objects.filter(pk=row.pk).update(state=UsageFile.State.IMPORTING, error="", started_at=clock.now())
    return row, "new"  # it could not be read before: read it again


def stored_keys(keys: pl.Series, file_id: int | None = None) -> set[str]:
    """Which of `keys` are record keys already stored as rated (of the file `file_id`, or any):
    the keys go into a temporary table and one join answers, whatever their number (the key
    table drives the join: one index lookup per key, not a scan of what is stored)."""
    keys = keys.unique()
    if keys.is_empty():
        return set()
    query = (f"SELECT r.record_key FROM obol_keys k CROSS JOIN {RatedRecord._meta.db_table} r "
             "WHERE r.tenant_id = %s AND r.record_key = k.record_key"
             + (" AND r.file_id = %s" if file_id is not None else ""))
    params = [current_tenant().pk] + ([file_id] if file_id is not None else [])
    with temporary_table("obol_keys", keys.alias("record_key").to_frame()), connection.cursor() as cursor:
        cursor.execute(query, params)
        return {key for (key,) in cursor.fetchall()}


def _allowances(subscription_ids: list[int]) -> pl.DataFrame:
    """The unit pockets (seconds, bytes, events; not money) of the subscriptions that still hold
    something, one row per pocket and service it pays for: what rating consumes before pricing.
    One query joined with the subscriptions (hundreds of thousands of pockets, no model objects)."""
    query = (f"SELECT p.id, p.subscription_id, CAST(p.services AS TEXT), CAST(p.balance AS BIGINT), p.priority, "
             "p.valid_from, p.valid_until, CAST(p.destination_groups AS TEXT), p.unit "
             f"FROM obol_subscriptions s CROSS JOIN {Pocket._meta.db_table} p "
             # `+p.tenant_id`: no index on the tenant alone, or SQLite may scan every pocket per subscription
             "WHERE +p.tenant_id = %s AND p.subscription_id = s.subscription_id AND p.source <> %s ORDER BY p.id")
    ids = pl.DataFrame({"subscription_id": subscription_ids}, schema={"subscription_id": pl.Int64})
    with temporary_table("obol_subscriptions", ids):
        frame = query_frame(query, [current_tenant().pk, Source.POSTPAID.value], {
            "pocket_id": pl.Int64, "subscription_id": pl.Int64, "service": pl.Utf8, "remaining": pl.Int64,
            "priority": pl.Int64, "valid_from": TS, "valid_until": TS, "destination_groups": pl.Utf8,
            "unit": pl.Utf8})
    units = frame["unit"].unique().to_list()
    money = [code for code in units if get_unit(code).is_money]
    return (frame.filter((pl.col("remaining") != 0) & ~pl.col("unit").is_in(money)).drop("unit")
            .with_columns(pl.col("service").str.json_decode(pl.List(pl.Utf8)),
                          pl.col("destination_groups").str.json_decode(pl.List(pl.Utf8)))
            .explode("service").drop_nulls("service"))


def _money(account_ids: list[int], modes: dict[int, str], currencies: dict[int, str],
           exhausted: set[int] = frozenset()) -> pl.DataFrame:
    """Money each prepaid or hybrid account can pay usage with now, in micro-units: its money
    pockets in its own currency that apply to any usage (no service or destination restriction),
    valid now, of an open account — what `spend` will take them from. A prepaid overdraft allowed
    by a credit limit is not counted: such records are flagged uncovered, for the real-time issue
    to prevent. `exhausted` accounts (an earlier run of the file ran out) get nothing."""
    payers = [a for a in account_ids if modes.get(a) in ("prepaid", "hybrid")]
    open_accounts = set(filter_in(BillingAccount.objects.filter(status=BillingAccount.Status.ACTIVE)
                                  .values_list("pk", flat=True), "pk", payers))
    available: Counter[int] = Counter()
    now = clock.now()
    pockets = Pocket.objects.exclude(source=Source.POSTPAID).exclude(balance=Decimal(0)).values_list(
        "account_id", "balance", "unit", "valid_from", "valid_until", "services", "destination_groups")
    for account_id, balance, unit, since, until, services, groups in filter_in(pockets, "account_id", payers):
        usable = (unit == currencies[account_id] and not services and not groups and since <= now
                  and (until is None or until > now))
        if usable and account_id in open_accounts and account_id not in exhausted:
            # in micro-units like the prices it is compared with, never more than the pocket holds
            available[account_id] += to_micros(round_amount(Amount(balance, unit), RoundingPlace.COVERAGE).value)
    return pl.DataFrame([(a, available[a]) for a in payers], orient="row",
                        schema={"account_id": pl.Int64, "available_micros": pl.Int64})


def _record_struct() -> pl.Expr:
    """The parsed record of a mediated row, as the importer made it (service is the kind again),
    kept with its suspense row for `recycle`."""
    return pl.struct([pl.col("service_kind").alias("service") if name == "service" else pl.col(name)
                      for name in RECORD_FIELDS]).alias("record")


def _currency_checked(rated: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(records priced in their account's currency, the others): a rate table in another currency
    than the account's is a tariff error, so its records go to suspense instead of being booked."""
    same = pl.col("currency") == pl.col("account_currency")
    return rated.filter(same), rated.filter(~same)


def _tariffs(codes: list[str]) -> dict:
    known = set(RateTable.objects.filter(code__in=codes).values_list("code", flat=True))
    return {code: rate_frames(code, versions="all") for code in codes if code in known}


PRIOR_USAGE_SCHEMA = {"subscription_id": pl.Int64, "service": pl.Utf8, "rate_table": pl.Utf8,
                      "quantity_before": pl.Int64}


def with_cycles(mediated: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Each record's bill cycle (monthly, on its account's cycle day) as `cycle_start`/`cycle_end`:
    tiers count usage within a cycle. Periods are worked out once per (cycle day, local date)."""
    local_day = pl.col("start").dt.convert_time_zone(tz).dt.date().alias("_day")
    frame = mediated.with_columns(local_day)
    pairs = frame.select("bill_cycle_day", "_day").unique().rows()
    periods = [(cycle_day, day, *_period(cycle_day, day)) for cycle_day, day in pairs]
    lookup = pl.DataFrame(periods, orient="row", schema={"bill_cycle_day": pl.Int64, "_day": pl.Date,
                                                          "cycle_start": pl.Date, "cycle_end": pl.Date})
    return frame.join(lookup, on=["bill_cycle_day", "_day"], how="left").drop("_day")


def _period(cycle_day: int, day):
    period = Cycle(Frequency.MONTH, day=cycle_day).period_containing(day)
    return period.start, period.end


def prior_usage(group: pl.DataFrame, cycle_start, cycle_end, tz: str, resumed_file: int | None = None
                ) -> pl.DataFrame:
    """Billed units already stored in the cycle before each subscription's first record of the
    group, per subscription, service and rate table (what the tiers have counted when its records
    start). A resumed file's own stored records all come before the rest of theirs: counted too."""
    zone = ZoneInfo(tz)
    cutoffs = group.group_by("account_id", "subscription_id").agg(pl.col("start").min().alias("cutoff"))
    if cutoffs.is_empty():
        return pl.DataFrame(schema=PRIOR_USAGE_SCHEMA)
    adapt = connection.ops.adapt_datetimefield_value
    query = (f"SELECT r.subscription_id, r.service, r.rate_table, SUM(r.billed) FROM obol_cutoffs c "
             f"CROSS JOIN {RatedRecord._meta.db_table} r WHERE +r.tenant_id = %s AND r.account_id = c.account_id "
             "AND r.subscription_id = c.subscription_id AND r.start >= %s AND r.start < %s "
             "AND (r.start < c.cutoff OR r.file_id = %s) GROUP BY r.subscription_id, r.service, r.rate_table")
    params = [current_tenant().pk, adapt(datetime.combine(cycle_start, time(0), tzinfo=zone)),
              adapt(datetime.combine(cycle_end, time(0), tzinfo=zone)), resumed_file]
    with temporary_table("obol_cutoffs", cutoffs), connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    return pl.DataFrame(rows, orient="row", schema=PRIOR_USAGE_SCHEMA)


def rate_by_cycle(mediated: pl.DataFrame, tz: str, rounding: str, tariffs: dict | None = None,
                  resumed_file: int | None = None):
    """Rate the records cycle by cycle (tiers count within one), each with the usage its cycle
    already has. Returns (rated, takes, unrated) over all cycles. `tariffs`: the rate frames by
    table code when the caller has them (else read for the records' tables)."""
    frame = with_cycles(mediated, tz)
    if tariffs is None:
        tariffs = _tariffs(frame["rate_table"].unique().to_list())
    allowances = _allowances(frame["subscription_id"].unique().to_list())
    rated, takes, unrated = [], [], []
    groups = frame.partition_by("cycle_start", "cycle_end", as_dict=True) if frame.height else {}
    for (cycle_start, cycle_end), group in sorted(groups.items()):
        prior = prior_usage(group, cycle_start, cycle_end, tz, resumed_file)
        result = rate(group, tariffs, allowances, prior, tz=tz, rounding=rounding)
        rated.append(result.rated)
        takes.append(result.takes)
        unrated.append(result.unrated)
        used = result.takes.group_by("pocket_id").agg(pl.col("quantity").sum().alias("_used"))
        allowances = (allowances.join(used, on="pocket_id", how="left")
                      .with_columns((pl.col("remaining") - pl.col("_used").fill_null(0)).alias("remaining"))
                      .drop("_used"))
    if not rated:
        empty = rate(frame, tariffs, allowances, pl.DataFrame(schema=PRIOR_USAGE_SCHEMA), tz=tz, rounding=rounding)
        return empty.rated, empty.takes, empty.unrated
    return (pl.concat(rated, how="vertical_relaxed"), pl.concat(takes, how="vertical_relaxed"),
            pl.concat(unrated, how="vertical_relaxed"))


def import_file(actor: Actor, path: Path, *, fmt: str, profile: dict | None = None, force: bool = False,
                chunk_size: int = CHUNK, part_size: int = PART,
                progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Import one usage file (see the module's docstring). `progress(n)` is told of n more records.
    Two runs never import the same file (same checksum) at once: the second gets Conflict (busy)."""
    actor.require_write()
    path = Path(path)
    digest = checksum(path)
    with ExitStack() as held:
        try:
            held.enter_context(exclusive("usage file", digest[:16]))
        except Conflict as busy:  # the daily job goes on with its other files
            return ImportSummary(str(path), "busy", note=busy.message)
        try:
            return _import(actor, path, digest, fmt, profile, force, chunk_size, part_size, progress)
        except Conflict as refused:  # e.g. a pocket spent elsewhere between rating and booking
            note = f"stopped: {refused.message}; the chunks stored so far stay, running it again resumes"
            alerts.raise_alert(actor, kind="import_interrupted", subject=f"usage file {path.name} stopped",
                               message=note, details={"file": str(path), "code": refused.code},
                               reference=str(path))
            return ImportSummary(str(path), "failed", note=note)


def account_parts(mediated: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    """The records in parts of about `size` records by account (an account's records are all in
    one part, in their order), one part at a time: allowances, tiers and money are per
    subscription or account, so rating the parts one by one gives what rating them together
    gives, in the memory of one part."""
    count = -(-mediated.height // size)
    if count <= 1:
        yield mediated
        return
    keys = mediated.select((pl.col("account_id").hash(seed=7) % count).alias("_part"))["_part"]
    for number in keys.unique().sort():
        yield mediated.filter(keys == number)


def _import(actor, path, digest, fmt, profile, force, chunk_size, part_size, progress) -> ImportSummary:
    row, mode = _file_row(path, digest, fmt, force)
    if mode == "skip":
        return ImportSummary(str(path), "skipped", note="imported before (same checksum); --force to import again")
    try:
        batch = get_importer(fmt).read(path, profile=profile)
    except (ObolError, OSError, pl.exceptions.PolarsError) as exc:
        UsageFile.objects.filter(pk=row.pk).update(state=UsageFile.State.FAILED, error=str(exc)[:2000],
                                                   finished_at=clock.now())
        alerts.raise_alert(actor, kind="file_unparseable", subject=f"usage file {path.name} cannot be read",
                           message=str(exc), details={"file": str(path), "format": fmt}, reference=str(path))
        return ImportSummary(str(path), "failed", note=str(exc))

    counts = {"skipped": sum(batch.skipped.values()), "read": batch.lines_accounted}
    records = batch.records.sort("start", "record_key")
    batch.records = batch.records.clear()  # one copy of the records in memory, not two
    if mode == "resume":  # what the committed chunks of the interrupted run stored is done
        resumed = stored_keys(records["record_key"], file_id=row.pk)
        records = records.filter(~pl.col("record_key").is_in(list(resumed)))
    mediated, suspense = mediate(records, load_lookups(), known_keys=stored_keys(records["record_key"]))
    del records
    parse_errors = batch.errors.select(pl.lit("").alias("record_key"), "line", "reason", "field", "message", "raw",
                                       pl.lit(None).alias("record"))
    suspense = pl.concat([parse_errors, suspense], how="vertical_relaxed")
    done_lines = set(SuspendedRecord.objects.filter(file=row).values_list("line", flat=True))
    tariffs = _tariffs(mediated["rate_table"].unique().to_list())
    exhausted = set(RatedRecord.objects.filter(file=row, uncovered=True).values_list("account_id", flat=True))
    next_chunk = row.chunks_done  # a resumed run numbers its chunks after the committed ones
    for index, part in enumerate(account_parts(mediated, part_size)):
        rated, takes, unrated = _rate_part(part, row.pk, tariffs, exhausted, resumed=mode == "resume")
        if index == 0:
            unrated = pl.concat([suspense, unrated], how="vertical_relaxed")
        unrated = batch.fill_raw(unrated.filter(~pl.col("line").is_in(list(done_lines))))
        next_chunk = _store(actor, row, rated, takes, unrated, chunk_size, next_chunk, progress,
                            counts if index == 0 else {})
    summary = ImportSummary(str(path), "done")
    _finish(row, summary)
    _alert(actor, path, summary)
    return summary


def _rate_part(part: pl.DataFrame, file_id: int, tariffs: dict, exhausted: set[int], resumed: bool):
    """Rate one part of a file's records and cover prepaid ones with money: (rated, takes,
    suspense rows for records without a tariff or priced in another currency)."""
    tenant = current_tenant()
    result_rated, takes, result_unrated = rate_by_cycle(part, tenant.timezone, tenant.rounding, tariffs,
                                                        resumed_file=file_id if resumed else None)
    accounts = part.select("account_id", "mode", "account_currency").unique("account_id")
    modes = dict(accounts.select("account_id", "mode").rows())
    currencies = dict(accounts.select("account_id", "account_currency").rows())
    rated = (cover_with_money(result_rated, _money(sorted(modes), modes, currencies, exhausted))
             .with_columns(pl.lit(file_id, pl.Int64).alias("file_id")))
    rated, mismatched = _currency_checked(rated)
    unrated = result_unrated.select("record_key", "line", "reason", pl.lit("rate_table").alias("field"),
                                    pl.format("no tariff for this record ({})", pl.col("reason")).alias("message"),
                                    "raw", _record_struct())
    wrong_currency = mismatched.select(
        "record_key", "line", pl.lit("currency_mismatch").alias("reason"), pl.lit("rate_table").alias("field"),
        pl.format("rate table {} prices in {}, the account bills in {}", pl.col("rate_table"), pl.col("currency"),
                  pl.col("account_currency")).alias("message"), "raw", _record_struct())
    return rated, takes, pl.concat([unrated, wrong_currency], how="vertical_relaxed")


NO_TARIFF = ("no_usage_charge", "no_rate_table", "no_tariff_version", "no_destination", "no_rate")


def _alert(actor: Actor, path: Path, summary: ImportSummary) -> None:
    """A file whose suspense rate is above the tenant's threshold, or with usage that has no tariff,
    raises an alert (stored, e-mailed and sent by webhook after commit)."""
    suspended = sum(summary.suspended.values())
    alerts.check_suspense_rate(actor, read=summary.read, suspended=suspended, reference=str(path),
                               details={"file": str(path), "by_reason": summary.suspended})
    no_tariff = {reason: n for reason, n in summary.suspended.items() if reason in NO_TARIFF}
    if no_tariff:
        alerts.raise_alert(actor, kind="no_tariff",
                           subject=f"{sum(no_tariff.values())} record(s) of {path.name} have no tariff",
                           message="; ".join(f"{reason}: {n}" for reason, n in sorted(no_tariff.items())),
                           details={"file": str(path), "by_reason": no_tariff}, reference=str(path))


def _with_takes(rated: pl.DataFrame, takes: pl.DataFrame) -> pl.DataFrame:
    """Each rated record with what it took from allowance pockets as text (`takes`:
    "pocket:quantity;..."), kept on the stored record: the ledger books takes per pocket and batch."""
    text = takes.group_by("record_key", maintain_order=True).agg(
        pl.format("{}:{}", "pocket_id", "quantity").str.join(";").alias("takes"))
    return rated.join(text, on="record_key", how="left", maintain_order="left").with_columns(
        pl.col("takes").fill_null(""))


def _pocket_uses(rated: pl.DataFrame, takes: pl.DataFrame, by: list[str] = ()) -> pl.DataFrame:
    """The takes of the rated records summed per pocket and service (and per `by` columns of the
    records): one ledger entry each, dated at its last record."""
    return (rated.select(*by, "record_key", "service", "start").join(takes, on="record_key")
            .group_by(*by, "pocket_id", "service").agg(pl.col("quantity").sum(), pl.col("start").max())
            .sort(*by, "pocket_id", "service"))


def _store(actor, row, rated, takes, suspense, chunk_size, first_chunk, progress, counts) -> int:
    """Store and book in chunks of records ordered by account, then time: an account's records
    are booked together (one ledger entry per pocket and chunk, not per record); an account with
    more records than a chunk spans chunks in time order, which is what a resumed run relies on.
    The suspense rows and the file's `counts` go with the first chunk. Returns the next chunk number."""
    rated = _with_takes(rated.sort("account_id", "start", "record_key"), takes).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) // chunk_size).alias("_chunk"))
    uses = _pocket_uses(rated, takes, by=["_chunk"]).partition_by("_chunk", as_dict=True)
    chunks = max(1, -(-rated.height // chunk_size))
    for number in range(chunks):
        part = rated.slice(number * chunk_size, chunk_size)
        part_uses = uses.get((number,), _pocket_uses(part.clear(), takes.clear()))
        with transaction.atomic():
            _book(actor, part, part_uses, f"usage-file:{row.pk}:chunk:{first_chunk + number}")
            if number == 0:
                _suspend(row, suspense)
            _count(row, part, suspense if number == 0 else None, counts if number == 0 else {})
        if progress:
            progress(part.height)
    return first_chunk + chunks


def _finish(row, summary: ImportSummary) -> None:
    UsageFile.objects.filter(pk=row.pk).update(state=UsageFile.State.DONE, finished_at=clock.now())
    row.refresh_from_db()
    summary.read, summary.rated, summary.duplicates = row.read, row.rated, row.duplicates
    summary.skipped = row.skipped
    summary.suspended = dict(Counter(SuspendedRecord.objects.filter(file=row, state="open")
                                     .values_list("reason", flat=True)))
    stored = RatedRecord.objects.filter(file=row)
    summary.charged_micros = int(stored.aggregate(total=Sum("price_micros"))["total"] or 0)
    summary.uncovered = stored.filter(uncovered=True).count()


RATED_COLUMNS = ["record_key", "file_id", "line", "account_id", "subscription_id", "service", "rate_table",
                 "cycle_start", "start", "quantity", "destination", "destination_group", "time_band", "included",
                 "charged", "billed", "price_micros", "currency", "uncovered", "takes"]


def _to_accrual() -> pl.Expr:
    """Whether a record's money accrues: postpaid always, hybrid beyond its money pockets (uncovered)."""
    return (pl.col("mode") == "postpaid") | ((pl.col("mode") == "hybrid") & pl.col("uncovered").fill_null(False))


def insert_rated(tenant_id: int, part: pl.DataFrame) -> None:
    """Store rated records in bulk, without a Python object per record (`core.bulk.insert_frame`),
    with the part of each price that accrued (`accrued_micros`: what invoices bill)."""
    insert_frame(RatedRecord, part.select(
        pl.lit(tenant_id, pl.Int64).alias("tenant_id"),
        *[pl.col(c) for c in RATED_COLUMNS if c not in ("destination", "destination_group", "time_band")],
        *[pl.col(c).fill_null("") for c in ("destination", "destination_group", "time_band")],
        pl.when(_to_accrual()).then(pl.col("price_micros")).otherwise(0).cast(pl.Int64).alias("accrued_micros"),
        pl.lit(clock.now()).dt.convert_time_zone("UTC").alias("rated_at"),
    ).with_columns(pl.col("uncovered").fill_null(False)))


def _book(actor, part: pl.DataFrame, uses: pl.DataFrame, reference: str) -> None:
    """Store rated records (their `file_id` column says where they came from, `takes` what they
    took) and book them, in the caller's transaction: the allowance `uses` (pocket, service,
    quantity, start) and the money per account."""
    if part.is_empty():
        return
    insert_rated(current_tenant().pk, part)
    pocket_uses = [batch_booking.PocketUse(pocket_id, service, Decimal(quantity), at)
                   for pocket_id, service, quantity, at in uses.select("pocket_id", "service", "quantity", "start").rows()]
    # Prepaid: what money pockets cover is debited, the rest stays flagged (uncovered) and unbooked.
    # Hybrid: covered from money pockets, the rest accrues. Postpaid: everything accrues.
    money = (part.filter((pl.col("mode") != "prepaid") | ~pl.col("uncovered"))
             .with_columns(_to_accrual().alias("to_accrual"))
             .group_by("account_id", "currency", "to_accrual").agg(pl.col("price_micros").sum())
             .filter(pl.col("price_micros") != 0).sort("account_id", "to_accrual"))
    money_uses = [batch_booking.MoneyUse(account_id, Amount(from_micros(micros), currency), accrual)
                  for account_id, currency, accrual, micros in money.rows()]
    batch_booking.book_usage(actor, pocket_uses, money_uses, reference=reference)


def _jsonable(record: dict | None) -> dict | None:
    if record is None:
        return None
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in record.items()}


def _suspend(row, suspense: pl.DataFrame) -> None:
    SuspendedRecord.objects.bulk_create([
        SuspendedRecord(tenant_id=row.tenant_id, file_id=row.pk, line=line, record_key=key or "", reason=reason,
                        field=field_name or "", message=message, raw=raw or "", record=_jsonable(record))
        for key, line, reason, field_name, message, raw, record in suspense.select(
            "record_key", "line", "reason", "field", "message", "raw", "record").rows()
    ], batch_size=2000)


def _count(row, part: pl.DataFrame, suspense: pl.DataFrame | None, extra: dict) -> None:
    from django.db.models import F

    changes = {"rated": F("rated") + part.height, "chunks_done": F("chunks_done") + 1}
    if suspense is not None:
        changes["suspended"] = F("suspended") + suspense.height
        changes["duplicates"] = F("duplicates") + suspense.filter(pl.col("reason") == "duplicate").height
    changes.update(extra)
    UsageFile.objects.filter(pk=row.pk).update(**changes)


@dataclass
class RecycleSummary:
    tried: int = 0
    rated: int = 0
    still_suspended: dict[str, int] = field(default_factory=dict)


RECYCLABLE = ("unknown_identifier", "subscription_not_active", "no_usage_charge", "no_rate_table",
              "no_tariff_version", "no_destination", "no_rate")


def _records_of(rows: list[SuspendedRecord]) -> pl.DataFrame:
    from obol.usage.importers.base import RECORD_SCHEMA

    frame = pl.DataFrame([{**r.record, "start": r.record["start"]} for r in rows],
                         schema_overrides={"start": pl.Utf8}, infer_schema_length=None)
    frame = frame.with_columns(pl.col("start").str.to_datetime(time_zone="UTC", time_unit="us"))
    return frame.select([pl.col(name).cast(dtype) for name, dtype in RECORD_SCHEMA.items()])


@transaction.atomic
def recycle(actor: Actor, rows=None) -> RecycleSummary:
    """Rate again the open suspense records (all, or those of the queryset `rows`) whose cause may
    have been fixed (a subscription or a tariff added): those that now rate are stored and booked
    and their suspense rows closed; the others keep their row with the new reason."""
    actor.require_write()
    candidates = SuspendedRecord.objects.filter(state=SuspendedRecord.State.OPEN, reason__in=RECYCLABLE,
                                                record__isnull=False)
    if rows is not None:
        candidates = candidates.filter(pk__in=rows.values("pk"))
    rows = list(candidates.select_for_update(of=("self",)))
    summary = RecycleSummary(tried=len(rows))
    if not rows:
        return summary
    by_key = {r.record_key: r for r in rows}
    records = _records_of(rows)
    known = stored_keys(pl.Series(list(by_key), dtype=pl.Utf8))
    mediated, suspense = mediate(records, load_lookups(), known_keys=known)
    tenant = current_tenant()
    result_rated, result_takes, result_unrated = rate_by_cycle(mediated, tenant.timezone, tenant.rounding)
    accounts = mediated.select("account_id", "mode", "account_currency").unique("account_id")
    modes, currencies = dict(accounts.select("account_id", "mode").rows()), dict(
        accounts.select("account_id", "account_currency").rows())
    file_ids = pl.DataFrame({"record_key": list(by_key), "file_id": [r.file_id for r in by_key.values()]},
                            schema={"record_key": pl.Utf8, "file_id": pl.Int64})
    rated = _with_takes(cover_with_money(result_rated, _money(sorted(modes), modes, currencies))
                        .join(file_ids, on="record_key", how="left").sort("start", "record_key"), result_takes)
    _book(actor, rated, _pocket_uses(rated, result_takes), f"usage-recycle:{clock.now():%Y%m%dT%H%M%S%f}")
    now = clock.now()
    SuspendedRecord.objects.filter(pk__in=[by_key[k].pk for k in rated["record_key"].to_list()]).update(
        state=SuspendedRecord.State.RECYCLED, resolved_at=now)
    unrated = result_unrated.select("record_key", pl.col("reason"),
                                    pl.format("no tariff for this record ({})", pl.col("reason")).alias("message"))
    still = pl.concat([suspense.select("record_key", "reason", "message"), unrated], how="vertical_relaxed")
    for key, reason, message in still.rows():
        row = by_key[key]
        row.reason, row.message = reason, message
        if reason == "duplicate":
            row.state, row.resolved_at = SuspendedRecord.State.DROPPED, now
    SuspendedRecord.objects.bulk_update([by_key[k] for k in still["record_key"].to_list()],
                                        ["reason", "message", "state", "resolved_at"])
    summary.rated = rated.height
    summary.still_suspended = dict(Counter(still["reason"].to_list()))
    return summary


@dataclass
class RerateSummary:
    records: int = 0
    price_before_micros: int = 0
    price_after_micros: int = 0
    unrated: int = 0


def _stored(records) -> pl.DataFrame:
    """Rated records back as the engine's input (mediation is not repeated: the subscription,
    service and rate table were decided when they were first rated)."""
    from obol.catalog.models import Service

    kinds = dict(Service.objects.values_list("code", "kind"))
    accounts = {a.pk: a for a in BillingAccount.objects.filter(pk__in={r.account_id for r in records})}
    rows = [(r.record_key, r.file_id, r.line, r.subscription_id, r.account_id, r.service, kinds.get(r.service, ""),
             r.rate_table, r.start, r.quantity, r.destination, accounts[r.account_id].mode,
             accounts[r.account_id].currency, accounts[r.account_id].bill_cycle_day, "") for r in records]
    return pl.DataFrame(rows, orient="row", schema={
        "record_key": pl.Utf8, "file_id": pl.Int64, "line": pl.Int64, "subscription_id": pl.Int64,
        "account_id": pl.Int64, "service": pl.Utf8, "service_kind": pl.Utf8, "rate_table": pl.Utf8, "start": TS,
        "quantity": pl.Int64, "destination": pl.Utf8, "mode": pl.Utf8, "account_currency": pl.Utf8,
        "bill_cycle_day": pl.Int64, "raw": pl.Utf8})


def _reverse(actor: Actor, records: list[RatedRecord], reference: str) -> None:
    """Give back what the records took: allowance units to their pockets (from each record's
    `takes`, one credit per pocket); money to the unbilled-usage pocket when it accrued (postpaid,
    hybrid uncovered), else to the account's main money balance (money is booked per account and
    chunk, not per record, so the pocket it came from is not known: a promotion's money comes
    back as main balance). Prepaid records that were not covered were never booked."""
    units: Counter[int] = Counter()
    for r in records:
        for take in filter(None, r.takes.split(";")):
            pocket_id, quantity = take.split(":")
            units[int(pocket_id)] += int(quantity)
    for pocket in Pocket.objects.filter(pk__in=list(units)).order_by("pk"):
        balances.credit_pocket(actor, pocket, Decimal(units[pocket.pk]), reference=reference, reason="re-rated")
    money: Counter[tuple[int, str, bool]] = Counter()
    modes = dict(BillingAccount.objects.filter(pk__in={r.account_id for r in records}).values_list("pk", "mode"))
    for r in records:
        mode = modes[r.account_id]
        if mode == "prepaid" and r.uncovered:
            continue
        to_accrual = mode == "postpaid" or (mode == "hybrid" and r.uncovered)
        money[(r.account_id, r.currency, to_accrual)] += r.price_micros
    for (account_id, currency, to_accrual), micros in money.items():
        if micros:
            balances.refund_usage(actor, BillingAccount.objects.get(pk=account_id),
                                  Amount(from_micros(micros), currency), to_accrual=to_accrual,
                                  reference=f"{reference}:{account_id}")


@transaction.atomic
def rerate(actor: Actor, *, start, end, account_id: int | None = None) -> RerateSummary:
    """Price the rated records of [start, end) again with today's tariffs (after a tariff
    correction): their bookings are reversed, then they are rated and booked anew, in one
    transaction. Nothing is charged twice: every record is stored once, before and after."""
    actor.require_write()
    tz = ZoneInfo(current_tenant().timezone)
    records = RatedRecord.objects.filter(start__gte=datetime.combine(start, time(0), tzinfo=tz),
                                         start__lt=datetime.combine(end, time(0), tzinfo=tz))
    if account_id is not None:
        records = records.filter(account_id=account_id)
    records = list(records.select_for_update(of=("self",)).order_by("start", "record_key"))
    summary = RerateSummary(records=len(records), price_before_micros=sum(r.price_micros for r in records))
    if not records:
        return summary
    reference = f"rerate:{clock.now():%Y%m%dT%H%M%S%f}"
    _reverse(actor, records, reference)
    frame = _stored(records)
    RatedRecord.objects.filter(pk__in=[r.pk for r in records]).delete()
    tenant = current_tenant()
    rated, takes, unrated = rate_by_cycle(frame, tenant.timezone, tenant.rounding)
    accounts = frame.select("account_id", "mode", "account_currency").unique("account_id")
    modes, currencies = dict(accounts.select("account_id", "mode").rows()), dict(
        accounts.select("account_id", "account_currency").rows())
    rated = cover_with_money(rated, _money(sorted(modes), modes, currencies)).sort("start", "record_key")
    rated, mismatched = _currency_checked(rated)
    if unrated.height or mismatched.height:  # never lose a rated record: fix the tariff, then rerate
        reasons = Counter(unrated["reason"].to_list() + ["currency_mismatch"] * mismatched.height)
        raise ValidationFailed(
            "rerate refused: with the tariffs as they are now, " + ", ".join(
                f"{n} record(s) {reason}" for reason, n in sorted(reasons.items())) + "; nothing was changed",
            code="rerate_refused")
    rated = _with_takes(rated, takes)
    _book(actor, rated, _pocket_uses(rated, takes), reference)
    summary.price_after_micros = int(rated["price_micros"].sum() or 0)
    summary.unrated = unrated.height
    return summary


DROP_REASON = "dropped in the back office"


def drop_suspense(actor: Actor, rows, reason: str = DROP_REASON) -> int:
    """Close open suspense rows without rating them (state dropped, audited); returns how many."""
    actor.require_write()
    dropped = 0
    with transaction.atomic():
        selected = list(rows.values_list("pk", flat=True))
        for row in (SuspendedRecord.objects.select_for_update().order_by("pk")
                    .filter(pk__in=selected, state=SuspendedRecord.State.OPEN)):
            row.state, row.resolved_at = SuspendedRecord.State.DROPPED, clock.now()
            row.save(update_fields=["state", "resolved_at"])
            audit.record(actor, "suspendedrecord.drop", row, {"state": ["open", "dropped"]}, reason=reason)
            dropped += 1
    return dropped
