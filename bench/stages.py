"""One benchmark stage per process, so that its peak RSS is its own (bench/run.py starts them).

    python bench/stages.py files --records N --out DIR          write DIR/cdr-N.csv (generated)
    python bench/stages.py polars --csv FILE                    (a) read the CSV with Polars alone
    python bench/stages.py engine --csv FILE                    (b) CSV importer -> mediation -> rate
    python bench/stages.py reference --sample N                 (c) the per-record reference (and the engine)
    python bench/stages.py db --url URL --records N --subscribers S    import_file into a database

Each prints one JSON line: records, seconds, parts (seconds per step), rss_start_mib (after imports
and set-up, before the clock starts) and rss_peak_mib (the process's peak resident memory).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __init__(self):
        self.parts: dict[str, float] = {}
        self.began = time.perf_counter()
        self.last = self.began

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = round(now - self.last, 3)
        self.last = now

    def report(self, records: int, rss_start: float, **extra) -> None:
        print(json.dumps({"records": records, "seconds": round(time.perf_counter() - self.began, 3),
                          "parts": self.parts, "rss_start_mib": round(rss_start), "rss_peak_mib": round(rss_mib()),
                          **extra}), flush=True)


def files(args) -> None:
    import django
    django.setup()
    from bench.generate import records, tariffs, write_csv
    path = Path(args.out) / f"cdr-{args.records}.csv"
    if not path.exists():
        _, prefixes = tariffs()
        write_csv(records(args.records, prefixes), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    print(json.dumps({"csv": str(path), "bytes": path.stat().st_size}))


def polars_read(args) -> None:
    import polars as pl
    start = rss_mib()
    clock = Clock()
    frame = pl.read_csv(args.csv)
    clock.lap("read_csv")
    clock.report(frame.height, start)


def engine(args) -> None:
    import django
    django.setup()
    import polars as pl
    from bench.generate import CSV_PROFILE, allowances, lookups, no_prior_usage, tariffs

    from obol.usage.importers import get_importer
    from obol.usage.mediation import mediate
    from obol.usage.rating import rate
    tables, _ = tariffs()
    pockets, known, prior = allowances(), lookups(), no_prior_usage()
    start = rss_mib()
    clock = Clock()
    batch = get_importer("csv").read(Path(args.csv), profile=CSV_PROFILE)
    clock.lap("import (read, split, parse, validate, keys)")
    records = batch.records.sort("start", "record_key")  # as obol.usage.pipeline.import_file does
    clock.lap("sort by start, record_key")
    mediated, suspense = mediate(records, known)
    clock.lap("mediate")
    del batch, records
    result = rate(mediated, tables, pockets, prior, tz="Europe/Berlin")
    clock.lap("rate")
    parquet = Path(args.out) / "rated.parquet"  # the other storage candidate (docs/usage-performance.md)
    result.rated.write_parquet(parquet, compression="zstd")
    clock.lap("write the rated rows as Parquet (not part of (b))")
    clock.report(mediated.height, start, rated=result.rated.height, unrated=result.unrated.height,
                 parquet_bytes=parquet.stat().st_size,
                 suspended=suspense.height, takes=result.takes.height,
                 charged_micros=int(result.rated["price_micros"].sum()),
                 included=int(result.rated["included"].sum()), polars_threads=pl.thread_pool_size())


def reference(args) -> None:
    import django
    django.setup()
    from bench.generate import allowances, no_prior_usage, records, tariffs
    from tests.usage.rating_reference import reference_rate

    from obol.usage.rating import rate
    tables, prefixes = tariffs()
    sample = records(args.sample, prefixes).drop("msisdn")
    pockets = allowances().join(sample.select("subscription_id").unique(), on="subscription_id", how="semi")
    start = rss_mib()
    clock = Clock()
    expected, _, _ = reference_rate(sample, tables, pockets, no_prior_usage(), tz="Europe/Berlin")
    clock.lap("reference")
    result = rate(sample, tables, pockets, no_prior_usage(), tz="Europe/Berlin")
    clock.lap("engine on the same sample")
    same = {r["record_key"]: r["price_micros"] for r in result.rated.iter_rows(named=True)} == {
        k: v["price_micros"] for k, v in expected.items()}
    clock.report(sample.height, start, identical_prices=same)


def db(args) -> None:
    os.environ["OBOL_DATABASE_URL"] = args.url
    os.environ["OBOL_DATA_DIR"] = str(Path(args.out))
    if args.url.startswith("sqlite:"):
        Path(args.url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    else:
        _recreate_postgres(args.url)
    import django
    django.setup()
    from datetime import date

    import polars as pl
    from bench.generate import CSV_PROFILE, random
    from django.core.management import call_command
    from tests.factories import make_account

    from obol.catalog.models import PricePlan
    from obol.catalog.services import load_catalog
    from obol.catalog.tariff_services import load_tariffs
    from obol.core.actors import Actor
    from obol.core.clock import frozen
    from obol.core.models import Tenant
    from obol.core.tenancy import tenant_context
    from obol.subscriptions import services as subscriptions
    from obol.usage import pipeline
    from obol.usage.models import RatedRecord
    call_command("migrate", verbosity=0)
    actor = Actor.process("bench")
    tenant = Tenant.objects.create(code="bench", name="Bench", country="DE", default_currency="EUR",
                                   timezone="Europe/Berlin")
    with tenant_context(tenant):
        tariffs = ROOT / "samples" / "tariffs" / "tariffs.yaml"
        load_tariffs(tariffs.read_text(), source=str(tariffs), actor=actor)
        catalog = ROOT / "samples" / "demo" / "catalog.yaml"
        load_catalog(catalog.read_text(), source=str(catalog), actor=actor)
        plan = PricePlan.objects.get(code="mobile-s")
        msisdns = [str(491_520_000_000 + i) for i in range(args.subscribers)]
        with frozen(date(2026, 3, 1)):
            for i, msisdn in enumerate(msisdns):
                subscriptions.subscribe(actor, make_account(f"B-{i}", mode="postpaid"), plan,
                                        start_date=date(2026, 3, 1),
                                        identifiers_=[{"kind": "msisdn", "value": msisdn}])
        path = Path(args.out) / f"db-{args.records}.csv"
        _db_csv(path, args.records, msisdns, random)
        stored = {}
        store = pipeline._store

        def timed_store(*a, **kw):  # how much of import_file is storing and booking
            began = time.perf_counter()
            try:
                return store(*a, **kw)
            finally:
                stored["store"] = time.perf_counter() - began

        pipeline._store = timed_store
        book = pipeline.balances.book_usage

        def timed_book(*a, **kw):  # of which booking allowance takes and money with the pocket core
            began = time.perf_counter()
            try:
                return book(*a, **kw)
            finally:
                stored["book"] = stored.get("book", 0) + time.perf_counter() - began

        pipeline.balances.book_usage = timed_book
        start = rss_mib()
        clock = Clock()
        summary = pipeline.import_file(actor, path, fmt="csv", profile=CSV_PROFILE)
        clock.lap("import_file")
        clock.parts["of which _store (bulk insert + bookings)"] = round(stored.get("store", 0), 3)
        clock.parts["of which book_usage (ledger entries, pockets)"] = round(stored.get("book", 0), 3)
        clock.report(args.records, start, rated=summary.rated, suspended=summary.suspended,
                     stored_rows=RatedRecord.objects.count(), database=args.url.split(":")[0],
                     polars=pl.__version__)


def _db_csv(path: Path, n: int, msisdns: list[str], random) -> None:
    """n records for the database's subscribers, destinations from the sample prefixes (the same
    mix: voice 55%, SMS 30%, data 15%, March 2026, shuffled)."""
    import polars as pl
    prefixes = pl.read_csv(ROOT / "samples" / "tariffs" / "prefixes.csv", schema_overrides={"prefix": pl.String})
    prefixes = prefixes.filter(pl.col("prefix").str.len_chars() >= 2)["prefix"]
    kind = pl.Series(["voice"] * 55 + ["sms"] * 30 + ["data"] * 15).gather(random(n, 0, 100, 12))
    frame = pl.DataFrame({
        "id": pl.select(pl.format("db{}", pl.int_range(0, n))).to_series(),
        "msisdn": pl.Series(msisdns).gather(random(n, 0, len(msisdns), 13)),
        "service": kind,
        "destination": pl.Series(prefixes).gather(random(n, 0, len(prefixes), 14)) + random(n, 10 ** 5, 10 ** 7, 15)
        .cast(pl.String),
        "start": (pl.Series([1772323200] * n) + random(n, 0, 30 * 86400, 16)),
        "_voice": random(n, 1, 1800, 17), "_data": random(n, 1, 50_000_000, 18),
    })
    frame.select(
        "id", "msisdn", "service",
        pl.when(pl.col("service") == "data").then(pl.lit("")).otherwise(pl.col("destination")).alias("destination"),
        pl.from_epoch("start").dt.strftime("%Y-%m-%d %H:%M:%S").alias("start"),
        pl.when(pl.col("service") == "voice").then("_voice").alias("duration"),
        pl.when(pl.col("service") == "data").then("_data").alias("volume"),
    ).write_csv(path)


def _recreate_postgres(url: str) -> None:
    import psycopg
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["files", "polars", "engine", "reference", "db"])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--csv")
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--url")
    parser.add_argument("--subscribers", type=int, default=300)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    {"files": files, "polars": polars_read, "engine": engine, "reference": reference, "db": db}[args.stage](args)


if __name__ == "__main__":
    main()
