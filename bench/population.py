"""The benchmark's population in a database, fast: bench/generate.py's workload in the shapes the
product itself creates, so that `import_file` (load_lookups, mediation, rating, booking) runs on it
as on real subscribers.

- tariffs: generate.tariffs() (voice, sms, data; 50,000 prefixes, bands, holidays, increments,
  minimum charges, fees, data tiers) written as a tariff document + prefix CSV and loaded with the
  product's loader (`load_tariffs`);
- a catalog (`load_catalog`) with two plans whose usage charges name those tables: `bench-allowance`
  with generate.allowances()' voice and data allowance (3600 s, 1 GiB a month), `bench-plain` without;
- SUBSCRIBERS customers, billing accounts (postpaid, EUR), subscriptions active since START
  (creation + activation timeline rows), their MSISDN usage identifiers (generate.MSISDN_BASE + s),
  and for the subscribers generate.allowances() gives an allowance, the first period's pockets with
  their grant ledger entries: row for row what `subscriptions.subscribe(...)` creates
  (create_population mirrors it with bulk inserts; bench/test_population.py compares them row by row).

Subscriber s (1-based) is the s-th subscription, its account and customer number `B-s`.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from bench import generate

START = date(2026, 3, 1)  # subscriptions active from here (records are March 2026)
PLAN_WITH, PLAN_WITHOUT = "bench-allowance", "bench-plain"
DAYS = {"12345": "mon-fri", "67": "sat-sun"}
TS = pl.Datetime("us", "UTC")


@cache
def _allowances() -> pl.DataFrame:
    return generate.allowances()  # 6 s to build: once


def _money(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def tariff_document(out: Path) -> Path:
    """generate.tariffs() as a tariff document (out/tariffs.yaml, prefixes in out/prefixes.csv)."""
    import yaml
    tables, prefixes = generate.tariffs()
    groups = pl.DataFrame({"prefix": prefixes}).with_columns(
        pl.col("prefix").str.slice(-1).cast(pl.Int64).map_elements(
            lambda d: generate.GROUPS[d % len(generate.GROUPS)], return_dtype=pl.String).alias("destination_group"))
    groups.write_csv(out / "prefixes.csv")
    bands = []
    for name, days, start, end, calendar in generate.WEEKLY:
        if calendar:
            bands.append({"name": name, "calendar": calendar})
        else:
            bands.append({"name": name, "days": DAYS[days], "from": _clock(start), "to": _clock(end)})
    docs = []
    for code in ("voice", "sms", "data"):
        frames = tables[code]
        rates = []
        for r in frames.rates.iter_rows(named=True):
            rate = {"group": r["destination_group"], "unit": r["unit"]}
            if r["time_band"] != "all":
                rate["band"] = r["time_band"]
            if r["price_micros"] is not None:
                rate["price"] = _money(r["price_micros"])
            if r["first_increment_s"] is not None:
                rate["first_increment_s"] = r["first_increment_s"]
                rate["next_increment_s"] = r["next_increment_s"]
            if r["minimum_charge_micros"]:
                rate["minimum_charge"] = _money(r["minimum_charge_micros"])
            if r["connection_fee_micros"]:
                rate["connection_fee"] = _money(r["connection_fee_micros"])
            if r["rounding_unit"]:
                rate["rounding_unit"] = r["rounding_unit"]
            if r["rounding"]:
                rate["rounding"] = r["rounding"]
            if r["tier_model"]:
                rate["tier_model"] = r["tier_model"]
                rate["tiers"] = [
                    {**({"up_to": t["up_to_micros"] // 1_000_000} if t["up_to_micros"] is not None else {}),
                     "unit_price": _money(t["unit_price_micros"])}
                    for t in frames.tiers.filter(pl.col("rate_id") == r["rate_id"]).sort("position")
                    .iter_rows(named=True)]
            rates.append(rate)
        default = frames.versions["default_group"][0]
        table = {"code": code, "name": f"Bench {code}", "service": frames.service_kind,
                 "groups": [{"code": g, "name": g} for g in ([default] if default else generate.GROUPS)],
                 "prefixes": [] if default else "prefixes.csv", "rates": rates}
        if not default:
            table["bands"] = bands
        docs.append(table)
    calendars = {}
    for calendar, day, name in generate.HOLIDAYS:
        calendars.setdefault(calendar, []).append({"date": day.isoformat(), "name": name})
    document = {"tariffs": 1, "effective_from": "2025-01-01", "currency": "EUR",
                "calendars": [{"code": c, "name": c, "holidays": h} for c, h in calendars.items()],
                "tables": docs}
    path = out / "tariffs.yaml"
    # prices as plain YAML decimals (the loader reads them exactly), not quoted strings
    text = yaml.safe_dump(document, sort_keys=False)
    path.write_text(_unquote_money(text))
    return path


def _unquote_money(text: str) -> str:
    import re
    return re.sub(r"'(\d+\.\d{6})'", r"\1", text)


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def catalog_document() -> str:
    """Two plans naming the tables: one with generate.allowances()' amounts a month, one without."""
    pockets = _allowances()
    voice = pockets.filter(pl.col("service") == "voice")["remaining"][0]
    data = pockets.filter(pl.col("service") == "data")["remaining"][0]
    return f"""catalog: 1
effective_from: 2025-01-01
currency: EUR
services:
  - {{code: voice, name: Voice calls, kind: voice, unit: second}}
  - {{code: sms, name: Text messages, kind: sms, unit: sms}}
  - {{code: data, name: Mobile data, kind: data, unit: byte}}
products:
  - {{code: mobile-usage, name: Mobile usage}}
plans:
  - code: {PLAN_WITH}
    name: Bench with allowances
    charges: &usage
      - {{type: usage, code: voice, product: mobile-usage, service: voice, rate_table: voice}}
      - {{type: usage, code: sms, product: mobile-usage, service: sms, rate_table: sms}}
      - {{type: usage, code: data, product: mobile-usage, service: data, rate_table: data}}
    allowances:
      - {{service: voice, amount: {voice}, unit: second}}
      - {{service: data, amount: {data}, unit: byte}}
  - code: {PLAN_WITHOUT}
    name: Bench without allowances
    charges: *usage
"""


def load_tariffs_and_catalog(actor, out: Path) -> None:
    """The tariffs and the two plans, through the product's loaders (tenant in scope)."""
    from obol.catalog.services import load_catalog
    from obol.catalog.tariff_services import load_tariffs
    path = tariff_document(out)
    load_tariffs(path.read_text(), source=str(path), actor=actor)
    load_catalog(catalog_document(), source="bench/population.py", actor=actor)


def subscribers_with_allowance(subscribers: int) -> pl.Series:
    """The subscribers (1-based) generate.allowances() gives a voice and a data allowance."""
    pockets = _allowances()
    return pockets.filter((pl.col("service") == "voice") & (pl.col("subscription_id") <= subscribers)
                          )["subscription_id"].sort()


def create_population(actor, subscribers: int = generate.SUBSCRIBERS, *, created: datetime | None = None) -> dict:
    """Subscribers 1..`subscribers` as `subscriptions.subscribe(actor, account, plan, start_date=START,
    identifiers_=[{"kind": "msisdn", "value": MSISDN_BASE + s}])` leaves them (postpaid EUR account
    `B-s` of customer `C-B-s`; subscription `S-{s:06d}` on PLAN_WITH for the subscribers with an
    allowance, else PLAN_WITHOUT; its create and activate timeline rows; the MSISDN from the local
    start of START; the allowance pockets of START's month with their grant ledger entries), inserted
    in bulk (COPY on PostgreSQL). Not written: the audit rows of those calls (no later query reads
    them). Returns the row counts. Tenant in scope; tables must not hold other subscribers' rows."""
    from django.db import connection, transaction
    from django.db.models import Max

    from obol.balances.models import LedgerEntry, Pocket
    from obol.catalog.models import PricePlan, Service
    from obol.core.models import Counter
    from obol.core.tenancy import current_tenant
    from obol.customers.models import BillingAccount, Customer
    from obol.subscriptions.models import Subscription, SubscriptionChange, UsageIdentifier

    tenant = current_tenant()
    zone = ZoneInfo(tenant.timezone)
    created = created or datetime.combine(START, time(12), tzinfo=UTC)
    plans = dict(PricePlan.objects.filter(code__in=[PLAN_WITH, PLAN_WITHOUT]).values_list("code", "pk"))
    names = dict(Service.objects.values_list("code", "name"))
    with_allowance = subscribers_with_allowance(subscribers)
    s = pl.int_range(1, subscribers + 1, eager=True, dtype=pl.Int64)
    has = s.is_in(with_allowance.implode())
    base = {model: model._base_manager.aggregate(top=Max("pk"))["top"] or 0
            for model in (Customer, BillingAccount, Subscription, SubscriptionChange, UsageIdentifier, Pocket,
                          LedgerEntry)}
    local_start = datetime.combine(START, time(0), tzinfo=zone).astimezone(UTC)
    period_end = date(START.year + START.month // 12, START.month % 12 + 1, 1)
    local_end = datetime.combine(period_end, time(0), tzinfo=zone).astimezone(UTC)
    period = f"{START.isoformat()} – {(period_end - timedelta(days=1)).isoformat()}"
    lit_ts = lambda moment: pl.lit(moment).cast(TS)  # noqa: E731
    common = {"tenant_id": pl.lit(tenant.pk, pl.Int64)}

    customers = pl.DataFrame({"s": s}).select(
        id=pl.col("s") + base[Customer], **common, number=pl.format("C-B-{}", "s"), kind=pl.lit("person"),
        name=pl.format("Bench subscriber {}", "s"), legal_name=pl.lit(""), email=pl.lit(""), phone=pl.lit(""),
        country=pl.lit(""), tax_id=pl.lit(""), language=pl.lit(""), reseller_id=pl.lit(None, pl.Int64),
        external_ref=pl.lit(""), created_at=lit_ts(created))
    accounts = pl.DataFrame({"s": s}).select(
        id=pl.col("s") + base[BillingAccount], **common, number=pl.format("B-{}", "s"),
        customer_id=pl.col("s") + base[Customer], name=pl.lit(""), currency=pl.lit("EUR"),
        bill_cycle_day=pl.lit(1), bill_period=pl.lit("month"), bill_cycle_month=pl.lit(1), bill_weekday=pl.lit(0),
        segment=pl.lit(""), itemised_usage=pl.lit(False), payment_terms_days=pl.lit(14),
        mode=pl.lit("postpaid"),
        credit_limit=pl.lit(None, pl.String), language=pl.lit(""), reseller_id=pl.lit(None, pl.Int64),
        omit_from_dunning=pl.lit(False), parent_id=pl.lit(None, pl.Int64),
        billing_contact_id=pl.lit(None, pl.Int64), status=pl.lit("active"), created_at=lit_ts(created))
    plan = pl.when(has).then(plans[PLAN_WITH]).otherwise(plans[PLAN_WITHOUT]).cast(pl.Int64)
    subscriptions = pl.DataFrame({"s": s, "has": has}).select(
        id=pl.col("s") + base[Subscription], **common, number=pl.format("S-{}", pl.col("s").cast(pl.String).str.zfill(6)),
        account_id=pl.col("s") + base[BillingAccount],
        plan_id=plan, quantity=pl.lit("1"), status=pl.lit("active"), start_date=pl.lit(START),
        end_date=pl.lit(None, pl.Date), created_at=lit_ts(created))
    changes = pl.concat([
        subscriptions.select(subscription_id="id", seq=pl.lit(1), kind=pl.lit("create"), status=pl.lit("pending"),
                             plan_id="plan_id"),
        subscriptions.select(subscription_id="id", seq=pl.lit(2), kind=pl.lit("activate"), status=pl.lit("active"),
                             plan_id="plan_id"),
    ]).sort("subscription_id", "seq").select(
        id=pl.int_range(1, 2 * subscribers + 1, dtype=pl.Int64) + base[SubscriptionChange], **common,
        subscription_id="subscription_id",
        seq="seq", kind="kind", effective_date=pl.lit(START), status="status", plan_id="plan_id",
        quantity=pl.lit("1"), reason=pl.lit(""), recorded_at=lit_ts(created))
    identifiers = pl.DataFrame({"s": s}).select(
        id=pl.col("s") + base[UsageIdentifier], **common, subscription_id=pl.col("s") + base[Subscription],
        kind=pl.lit("msisdn"), value=(pl.col("s") + generate.MSISDN_BASE).cast(pl.String), valid_from=lit_ts(local_start),
        valid_to=pl.lit(None, TS))
    granted = _allowances()  # the same amounts a month (catalog_document)
    amount = dict(granted.select("service", "remaining").unique("service").rows())
    pockets = pl.concat([
        pl.DataFrame({"subscription_id": with_allowance}).with_columns(
            position=pl.lit(position), service=pl.lit(service), unit=pl.lit(unit), amount=pl.lit(amount[service]))
        for position, (service, unit) in enumerate([("voice", "second"), ("data", "byte")])
    ]).sort("subscription_id", "position").with_columns(
        id=pl.int_range(1, 2 * len(with_allowance) + 1, dtype=pl.Int64) + base[Pocket],
        entry_id=pl.int_range(1, 2 * len(with_allowance) + 1, dtype=pl.Int64) + base[LedgerEntry],
        account_id=pl.col("subscription_id") + base[BillingAccount])
    key = pl.format("allowance:{}:{}:{}:{}", pl.col("subscription_id") + base[Subscription], "service", "position", pl.lit(START.isoformat()))
    label = pl.col("service").replace_strict(names, return_dtype=pl.String)
    pocket_rows = pockets.select(
        "id", **common, account_id="account_id", unit="unit", display_unit="unit",
        balance=pl.col("amount").cast(pl.String), granted=pl.col("amount").cast(pl.String),
        source=pl.lit("allowance"), label=pl.format("{} allowance {}", label, pl.lit(period)),
        priority=pl.lit(100), valid_from=lit_ts(local_start), valid_until=lit_ts(local_end),
        services=pl.format('["{}"]', "service"), destination_groups=pl.lit("[]"),
        subscription_id=pl.col("subscription_id") + base[Subscription], period_start=pl.lit(START), period_end=pl.lit(period_end),
        rollover_cap=pl.lit(None, pl.String), grant_key=key, created_at=lit_ts(created))
    entries = pockets.select(
        id="entry_id", **common, pocket_id="id", at=lit_ts(created), kind=pl.lit("grant"),
        amount=pl.col("amount").cast(pl.String), balance_after=pl.col("amount").cast(pl.String),
        service=pl.lit(""),
        reason=pl.format("allowance of S-{} for {}", pl.col("subscription_id").cast(pl.String).str.zfill(6),
                         pl.lit(period)),
        reference=key, actor_kind=pl.lit(actor.kind), actor_id=pl.lit(actor.id), actor_label=pl.lit(actor.label))
    counts = {}
    with transaction.atomic():
        for model, frame in ((Customer, customers), (BillingAccount, accounts), (Subscription, subscriptions),
                             (SubscriptionChange, changes), (UsageIdentifier, identifiers), (Pocket, pocket_rows),
                             (LedgerEntry, entries)):
            counts[model.__name__] = _insert(connection, model, frame)
        Counter.objects.update_or_create(series="subscription", defaults={"last_value": subscribers, "tenant": tenant})
        if connection.vendor == "postgresql":
            from django.core.management.color import no_style
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), [
                        Customer, BillingAccount, Subscription, SubscriptionChange, UsageIdentifier, Pocket,
                        LedgerEntry]):
                    cursor.execute(sql)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return counts


def _insert(connection, model, frame: pl.DataFrame) -> int:
    """Insert `frame` (one column per concrete field, values as the database stores them) into
    `model`'s table: COPY on PostgreSQL, one executemany on SQLite."""
    columns = [f.column for f in model._meta.concrete_fields]
    if sorted(columns) != sorted(frame.columns):
        raise ValueError(f"{model.__name__}: columns {sorted(frame.columns)} are not the fields {sorted(columns)}")
    postgres = connection.vendor == "postgresql"
    stamp = "%Y-%m-%d %H:%M:%S+00:00" if postgres else "%Y-%m-%d %H:%M:%S"
    frame = frame.select(
        pl.col(c).dt.strftime(stamp) if frame.schema[c] == TS
        else pl.col(c).dt.strftime("%Y-%m-%d") if frame.schema[c] == pl.Date
        else pl.col(c).cast(pl.Int64) if frame.schema[c] == pl.Boolean and not postgres
        else pl.col(c) for c in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if postgres:
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)") as copy:
                for part in frame.iter_slices(100_000):
                    copy.write(part.write_csv(include_header=False, quote_style="non_numeric"))
        else:
            marks = ", ".join("?" for _ in columns)
            for part in frame.iter_slices(100_000):
                cursor.cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", part.rows())
    return frame.height
