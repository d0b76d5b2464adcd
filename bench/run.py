"""`make bench`: the usage mass process's speed (issue 4, Performance). Not a test: nothing is asserted.

For each N (default 1,000,000 and 10,000,000) it generates the issue's CDR file (bench/generate.py)
and runs, each in its own process so that each peak RSS is the stage's own:
  (a) Polars alone reading the CSV (the baseline),
  (b) the product's pure path: the CSV importer -> sort -> mediation -> `rate` (no database),
  (c) the per-record Python reference (tests/usage/rating_reference.py) on a 20,000-record sample,
and prints records/s, peak memory and the ratios of (b) to (a) and to (c). Then `import_file`, the
real product path (file -> rated -> stored and booked), on a smaller file into SQLite and PostgreSQL.

    .venv/bin/python bench/run.py [--records 1000000,10000000] [--db-records 200000] [--skip-db]
    BENCH_RECORDS=200000 make bench      # a quick run
    BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/benchdb (default; the database is recreated)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "bench" / "stages.py"


def stage(*args: str) -> dict:
    done = subprocess.run([sys.executable, str(STAGES), *args], check=False, capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"stage {args[0]} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rate_of(result: dict) -> float:
    return result["records"] / result["seconds"]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 ** 2 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} CPU ({cpu}), {memory} GiB RAM, Python {platform.python_version()}"


def line(name: str, result: dict) -> str:
    peak = result["rss_peak_mib"]
    per_million = peak / (result["records"] / 1e6)
    work = (peak - result["rss_start_mib"]) / (result["records"] / 1e6)
    return (f"  {name:<36} {rate_of(result):>11,.0f} rec/s {result['seconds']:>7.2f} s  "
            f"peak {peak / 1024:5.2f} GiB = {per_million / 1024:.2f} GiB/M "
            f"(set-up {result['rss_start_mib']} MiB; above it {work / 1024:.2f} GiB/M)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", default=os.environ.get("BENCH_RECORDS", "1000000,10000000"))
    parser.add_argument("--sample", type=int, default=int(os.environ.get("BENCH_SAMPLE", "20000")))
    parser.add_argument("--db-records", type=int, default=int(os.environ.get("BENCH_DB_RECORDS", "1000000")))
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/benchdb"))
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench"))
    args = parser.parse_args()
    sizes = [int(n) for n in args.records.split(",") if n]
    print(f"machine: {machine()}")
    reference = stage("reference", "--sample", str(args.sample), "--out", args.out)
    print(f"(c) per-record reference on {reference['records']:,} records: {rate_of(reference):,.0f} rec/s "
          f"(engine on the same sample: {reference['records'] / reference['parts']['engine on the same sample']:,.0f}"
          f" rec/s; same prices: {reference['identical_prices']})")
    for n in sizes:
        made = stage("files", "--records", str(n), "--out", args.out)
        baseline = stage("polars", "--csv", made["csv"], "--out", args.out)
        engine = stage("engine", "--csv", made["csv"], "--out", args.out)
        parquet = engine["parts"].pop("write the rated rows as Parquet (not part of (b))")
        engine["seconds"] -= parquet
        print(f"\nN = {n:,} ({made['bytes'] / 1024 ** 2:,.0f} MiB CSV)")
        print(line("(a) Polars read_csv alone", baseline))
        print(line("(b) importer -> mediation -> rate", engine))
        print("      " + ", ".join(f"{k} {v:.2f} s" for k, v in engine["parts"].items()))
        print(f"      rated {engine['rated']:,}, unrated {engine['unrated']:,}, suspended {engine['suspended']:,}, "
              f"allowance takes {engine['takes']:,}")
        print(f"      storage candidate: the rated rows written as Parquet (zstd) in {parquet:.2f} s = "
              f"{engine['rated'] / parquet:,.0f} rows/s, {engine['parquet_bytes'] / engine['rated']:.1f} bytes/row")
        print(f"  ratios: (b)/(a) = {rate_of(engine) / rate_of(baseline):.3f}   "
              f"(b)/(c) = {rate_of(engine) / rate_of(reference):,.1f}x   "
              f"rate() alone {n / engine['parts']['rate']:,.0f} rec/s")
        print(f"  goal: 1,500,000 rec/s and 0.2 GiB per million -> (b) reaches "
              f"{rate_of(engine) / 1.5e6:.0%} of the speed, "
              f"{engine['rss_peak_mib'] / 1024 / (n / 1e6):.2f} GiB per million")
    if args.skip_db:
        return
    print(f"\nimport_file (file -> mediated -> rated -> stored and booked), {args.db_records:,} records, "
          f"{args.subscribers} subscribers, the sample tariffs:")
    for url in (f"sqlite:///{Path(args.out) / 'bench.sqlite3'}", args.postgres):
        result = stage("db", "--url", url, "--records", str(args.db_records), "--subscribers",
                       str(args.subscribers), "--out", args.out)
        print(line(f"{result['database']}", result))
        store = result["parts"]["of which _store (bulk insert + bookings)"]
        book = result["parts"]["of which book_usage (ledger entries, pockets)"]
        print(f"      of which storing and booking (_store): {store:.2f} s ({store / result['seconds']:.0%}), "
              f"booking takes and money (book_usage) {book:.2f} s; "
              f"rated {result['rated']:,}, suspended {result['suspended']}, rows stored {result['stored_rows']:,}")


if __name__ == "__main__":
    main()
