"""One benchmark stage per process, so that its peak RSS is its own (bench/run.py starts them).

    python bench/stages.py files --records N --out DIR          write DIR/cdr-N.csv (generated)
    python bench/stages.py polars --csv FILE                    (a) read the CSV with Polars alone
    python bench/stages.py engine --csv FILE                    (b) CSV importer -> mediation -> rate
    python bench/stages.py reference --sample N                 (c) the per-record reference (and the engine)
    python bench/stages.py db --url URL --csv FILE [--subscribers S]      import_file into a database with
                                                                generate.py's population (bench/population.py)

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
    """The product path on the issue's workload: bench/population.py puts generate.py's tariffs,
    plans and subscribers into a fresh database (set-up, timed apart), then `import_file` reads
    the engine stage's CSV (file -> mediated -> rated -> stored and booked)."""
    setup = Clock()
    os.environ["OBOL_DATABASE_URL"] = args.url
    os.environ["OBOL_DATA_DIR"] = str(Path(args.out))
    if args.url.startswith("sqlite:"):
        Path(args.url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    else:
        _recreate_postgres(args.url)
    import django
    django.setup()
    from datetime import UTC, datetime

    import polars as pl
    from bench import population
    from bench.generate import CSV_PROFILE, MSISDN_BASE, SUBSCRIBERS
    from django.core.management import call_command
    from django.db.models import Count, Sum

    from obol.balances import services as balances
    from obol.core.actors import Actor
    from obol.core.models import Tenant
    from obol.core.tenancy import tenant_context
    from obol.usage import pipeline
    from obol.usage.models import RatedRecord
    call_command("migrate", verbosity=0)
    setup.lap("migrate")
    actor = Actor.process("bench")
    tenant = Tenant.objects.create(code="bench", name="Bench", country="DE", default_currency="EUR",
                                   timezone="Europe/Berlin")
    path = Path(args.csv)
    if args.subscribers < SUBSCRIBERS:  # a smaller population: the records' subscribers folded onto it
        path = Path(args.out) / f"{path.stem}-s{args.subscribers}.csv"
        frame = pl.read_csv(args.csv, infer_schema=False)
        s = frame["msisdn"].cast(pl.Int64) - MSISDN_BASE
        frame.with_columns(msisdn=((s - 1) % args.subscribers + 1 + MSISDN_BASE).cast(pl.String)).write_csv(path)
        del frame, s
        setup.lap("fold the CSV onto the smaller population")
    with tenant_context(tenant):
        population.load_tariffs_and_catalog(actor, Path(args.out))
        setup.lap("tariffs and catalog (load_tariffs, load_catalog)")
        created = population.create_population(actor, args.subscribers)
        setup.lap(f"{args.subscribers:,} subscribers (bulk)")
        assert balances.verify() == [], "balances verify failed after create_population"
        setup.lap("balances verify")
        stored = {}
        store = pipeline._store

        def timed_store(*a, **kw):  # how much of import_file is storing and booking
            began = time.perf_counter()
            try:
                return store(*a, **kw)
            finally:
                stored["store"] = stored.get("store", 0) + time.perf_counter() - began

        pipeline._store = timed_store
        book = pipeline.batch_booking.book_usage

        def timed_book(*a, **kw):  # of which booking allowance takes and money with the pocket core
            began = time.perf_counter()
            try:
                return book(*a, **kw)
            finally:
                stored["book"] = stored.get("book", 0) + time.perf_counter() - began

        pipeline.batch_booking.book_usage = timed_book
        start = rss_mib()
        clock = Clock()
        summary = pipeline.import_file(actor, path, fmt="csv", profile=CSV_PROFILE)
        clock.lap("import_file")
        clock.parts["of which _store (bulk insert + bookings)"] = round(stored.get("store", 0), 3)
        clock.parts["of which book_usage (ledger entries, pockets)"] = round(stored.get("book", 0), 3)
        seconds = round(time.perf_counter() - clock.began, 3)
        rss_peak = round(rss_mib())  # before the checks below
        verified = balances.verify() == []
        april = datetime(2026, 3, 31, 22, tzinfo=UTC)  # 1 April 00:00 in Berlin: the next bill cycle
        rows = RatedRecord.objects.all()
        totals = rows.aggregate(included=Sum("included"), count=Count("pk"))
        march = rows.filter(start__lt=april).aggregate(t=Sum("price_micros"))["t"] or 0
        clock.began = time.perf_counter() - seconds  # the checks are not part of the measure
        clock.report(args.records, start, rated=summary.rated, suspended=summary.suspended,
                     stored_rows=totals["count"], database=args.url.split(":")[0], polars=pl.__version__,
                     charged_micros=summary.charged_micros, charged_micros_march=int(march),
                     included=int(totals["included"] or 0),
                     subscribers=args.subscribers, population=created, setup=setup.parts,
                     setup_seconds=round(sum(setup.parts.values()), 3), balances_verified=verified,
                     rss_peak_mib=rss_peak)  # before the checks


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
    parser.add_argument("--subscribers", type=int, default=int(os.environ.get("BENCH_SUBSCRIBERS", "400000")))
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    {"files": files, "polars": polars_read, "engine": engine, "reference": reference, "db": db}[args.stage](args)


if __name__ == "__main__":
    main()
