"""The benchmark's bulk population (bench/population.py) is what the product itself creates:

- `create_population` leaves, row for row, what the same subscribers' `subscriptions.subscribe(...)`
  calls leave (customers, accounts, subscriptions and their timeline, MSISDNs, the first period's
  allowance pockets and grant entries; the audit rows apart), and the balances verify;
- the tariff document `tariff_document` writes, loaded with the product's loader and read back with
  `rate_frames`, prices generate.py's records exactly as generate.tariffs() does.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from bench import generate, population
from django.apps import apps
from polars.testing import assert_frame_equal

from obol.balances import services as balances
from obol.balances.models import LedgerEntry, Pocket
from obol.catalog.models import PricePlan
from obol.catalog.rates import rate_frames
from obol.catalog.services import load_catalog
from obol.catalog.tariff_services import load_tariffs
from obol.core.clock import frozen
from obol.core.models import AuditEvent, Counter
from obol.core.tenancy import TenantOwned, current_tenant, tenant_context
from obol.customers.models import BillingAccount, Customer
from obol.subscriptions import services as subscriptions
from obol.subscriptions.models import Subscription, SubscriptionChange, UsageIdentifier
from obol.usage.rating import rate
from tests.factories import make_account

SUBSCRIBERS = 12
TZ = "Europe/Berlin"  # the benchmark tenant's zone: local midnights are not UTC ones
CREATED = datetime.combine(population.START, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
# The plans only name the rate tables: small tables stand in for generate.py's 50,000 prefixes
# (the second test loads those), to keep this test fast.
TABLES = """tariffs: 1
effective_from: 2025-01-01
currency: EUR
tables:
  - {code: voice, name: Bench voice, service: voice, groups: [{code: all, name: all}], prefixes: [],
     rates: [{group: all, unit: minute, price: 0.09}]}
  - {code: sms, name: Bench sms, service: sms, groups: [{code: all, name: all}], prefixes: [],
     rates: [{group: all, unit: sms, price: 0.09}]}
  - {code: data, name: Bench data, service: data, groups: [{code: data, name: data}], prefixes: [],
     rates: [{group: data, unit: megabyte, price: 0.01}]}
"""
MODELS = (Customer, BillingAccount, Subscription, SubscriptionChange, UsageIdentifier, Pocket, LedgerEntry)


@pytest.fixture
def berlin(tenant, other_tenant):
    for t in (tenant, other_tenant):
        t.timezone = TZ
        t.save(update_fields=["timezone"])
    return tenant, other_tenant


def _subscribe_each(actor, subscribers: int) -> None:
    """The product's path, one subscriber after the other, as create_population describes it."""
    allowances = population._allowances()  # generate.allowances(), built once (3 s)
    with_allowance = set(allowances.filter(
        (pl.col("service") == "voice") & (pl.col("subscription_id") <= subscribers))["subscription_id"])
    assert 0 < len(with_allowance) < subscribers  # both plans are exercised
    plans = {p.code: p for p in PricePlan.objects.filter(
        code__in=[population.PLAN_WITH, population.PLAN_WITHOUT])}
    with frozen(CREATED):
        for s in range(1, subscribers + 1):
            customer = Customer.objects.create(tenant=current_tenant(), number=f"C-B-{s}",
                                               name=f"Bench subscriber {s}")
            account = make_account(f"B-{s}", customer=customer, mode=BillingAccount.Mode.POSTPAID)
            plan = plans[population.PLAN_WITH if s in with_allowance else population.PLAN_WITHOUT]
            subscriptions.subscribe(actor, account, plan, start_date=population.START,
                                    identifiers_=[{"kind": "msisdn", "value": str(generate.MSISDN_BASE + s)}])


def _load_tables_and_plans(actor) -> None:
    load_tariffs(TABLES, source="test", actor=actor)
    load_catalog(population.catalog_document(), source="bench/population.py", actor=actor)


def _rows() -> dict[str, list]:
    """The tenant in scope's rows of MODELS, ids (and the ids inside keys) replaced by numbers and
    codes, decimals as stored, sorted: comparable between tenants."""
    natural = {
        Customer: dict(Customer.objects.values_list("pk", "number")),
        BillingAccount: dict(BillingAccount.objects.values_list("pk", "number")),
        Subscription: dict(Subscription.objects.values_list("pk", "number")),
        PricePlan: dict(PricePlan.objects.values_list("pk", "code")),
    }

    def key(text: str) -> str:  # allowance:<subscription id>:service:position:period
        kind, subscription_id, rest = text.split(":", 2)
        return f"{kind}:{natural[Subscription][int(subscription_id)]}:{rest}"

    natural[Pocket] = {pk: key(grant) for pk, grant in Pocket.objects.values_list("pk", "grant_key")}
    result = {}
    for model in MODELS:
        fields = {f.attname: f for f in model._meta.concrete_fields}
        rows = []
        for row in model.objects.values(*fields):
            out = {}
            for name, value in row.items():
                field = fields[name]
                if field.primary_key or name == "tenant_id":
                    continue
                if field.is_relation and value is not None:
                    value = natural[field.related_model][value]  # KeyError: a relation not expected here
                elif isinstance(value, Decimal):
                    value = str(value)
                elif name in ("grant_key", "reference") and value:
                    value = key(value)
                out[name] = value
            rows.append(out)
        result[model.__name__] = sorted(rows, key=repr)
    return result


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in apps.get_models()
            if issubclass(m, TenantOwned) and m is not AuditEvent}


def test_create_population_leaves_what_subscribe_leaves(berlin, system):
    bulk_tenant, product_tenant = berlin
    with tenant_context(bulk_tenant):
        _load_tables_and_plans(system)
        made = population.create_population(system, SUBSCRIBERS)
        bulk, bulk_counts = _rows(), _counts()
        bulk_counter = Counter.objects.get(series="subscription").last_value
        assert balances.verify() == []
    with tenant_context(product_tenant):
        _load_tables_and_plans(system)
        _subscribe_each(system, SUBSCRIBERS)
        product, product_counts = _rows(), _counts()
        product_counter = Counter.objects.get(series="subscription").last_value
        assert balances.verify() == []

    assert made == {name: len(rows) for name, rows in product.items()}
    assert product["Pocket"] and product["LedgerEntry"]  # some subscribers have allowances
    for name in product:
        assert bulk[name] == product[name], name
    assert bulk_counter == product_counter == SUBSCRIBERS
    assert bulk_counts == product_counts  # no other table (audit apart) holds rows of one only
    with tenant_context(bulk_tenant):  # the product carries on after the bulk insert (ids, numbers)
        account = make_account("B-next", customer=Customer.objects.get(number="C-B-1"))
        later = subscriptions.subscribe(system, account, PricePlan.objects.get(code=population.PLAN_WITH),
                                        start_date=population.START)
        assert later.number == f"S-{SUBSCRIBERS + 1:06d}"
        assert balances.verify() == []


def test_tariff_document_loaded_rates_as_generated_tariffs(in_tenant, system, tmp_path):
    in_tenant.timezone = TZ
    in_tenant.save(update_fields=["timezone"])
    path = population.tariff_document(tmp_path)
    load_tariffs(path.read_text(), source=str(path), actor=system)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    loaded = {code: rate_frames(code, at=at) for code in ("voice", "sms", "data")}
    generated, prefixes = generate.tariffs()

    # folded onto 25 subscribers, so that their data crosses the 1 GB tier (400,000 would not)
    records = generate.records(20_000, prefixes).drop("msisdn").with_columns(
        subscription_id=(pl.col("subscription_id") - 1) % 25 + 1).with_columns(
        account_id=pl.col("subscription_id") + 1_000_000)
    # March has no holiday: move some records onto Karfreitag and Ostermontag (local), same time of day
    day_us = 86_400 * 1_000_000
    since = (pl.col("start") - pl.lit(at)).dt.total_microseconds()
    holidays = records.head(2_000).with_columns(
        pl.format("{}:holiday", "record_key").alias("record_key"),
        (pl.when(since // day_us % 2 == 0).then(pl.lit(datetime(2026, 4, 2, 22, tzinfo=UTC)))
         .otherwise(pl.lit(datetime(2026, 4, 5, 22, tzinfo=UTC))) + pl.duration(microseconds=since % day_us))
        .cast(pl.Datetime("us", "UTC")).alias("start"))
    records = pl.concat([records, holidays])
    no_pockets = pl.DataFrame(schema={  # nothing included: every record is priced by the tariffs
        "pocket_id": pl.Int64, "subscription_id": pl.Int64, "service": pl.String, "remaining": pl.Int64,
        "priority": pl.Int64, "valid_from": pl.Datetime("us", "UTC"), "valid_until": pl.Datetime("us", "UTC"),
        "destination_groups": pl.List(pl.String)})

    # all of the engine's output but tariff_version_id (a database id on one side)
    columns = ["record_key", "subscription_id", "destination_group", "time_band", "included", "charged",
               "billed", "price_micros", "currency"]
    results = []
    for tables in (loaded, generated):
        result = rate(records, tables, no_pockets, generate.no_prior_usage(), tz=TZ)
        assert result.unrated.height == 0
        results.append(result.rated.select(columns).sort("record_key"))
    from_database, from_generate = results
    assert from_database.height == records.height == 22_000
    assert_frame_equal(from_database, from_generate)
    assert set(from_database["time_band"]) >= {"peak", "offpeak", "weekend", "holiday"}
    assert set(from_database["destination_group"]) == {*generate.GROUPS, "data"}
    assert from_database["price_micros"].min() > 0
    data = from_database.filter(pl.col("destination_group") == "data").group_by("subscription_id").agg(
        pl.col("charged").sum())
    assert data.height == 25 and data["charged"].min() > 2 * 1024 ** 3  # each beyond the 1 GB tier
