"""`make bench`: the usage mass process's speed (issue 4, Performance). Not a test: nothing is asserted.

For each N (default 1,000,000 and 10,000,000) it generates the issue's CDR file (bench/generate.py)
and runs, each in its own process so that each peak RSS is the stage's own:
  (a) Polars alone reading the CSV (the baseline),
  (b) the product's pure path: the CSV importer -> sort -> mediation -> `rate` (no database),
  (c) the per-record Python reference (tests/usage/rating_reference.py) on a 20,000-record sample,
and prints records/s, peak memory and the ratios of (b) to (a) and to (c). Then `import_file`, the
real product path (file -> rated -> stored and booked), on the same file for each N into a fresh SQLite
and PostgreSQL database holding generate.py's population (bench/population.py: its tariffs, two plans,
400,000 subscribers, 60% with allowances), set up in bulk before the clock starts.

    .venv/bin/python bench/run.py [--records 1000000,10000000] [--subscribers 400000] [--skip-db]
    BENCH_RECORDS=200000 make bench      # a quick run (BENCH_SUBSCRIBERS=20000 for a smaller population)
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
SUBSCRIBERS = 400_000  # bench/generate.py's population (BENCH_SUBSCRIBERS scales the db stage's down)


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
    parser.add_argument("--subscribers", type=int, default=int(os.environ.get("BENCH_SUBSCRIBERS", SUBSCRIBERS)))
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/benchdb"))
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument("--db-max", type=int, default=int(os.environ.get("BENCH_DB_MAX", "1000000")),
                        help="run the product path (import_file into a database) up to this N (10M: ~15 min on "
                             "SQLite, longer on PostgreSQL)")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench"))
    args = parser.parse_args()
    sizes = [int(n) for n in args.records.split(",") if n]
    print(f"machine: {machine()}")
    reference = stage("reference", "--sample", str(args.sample), "--out", args.out)
    print(f"(c) per-record reference on {reference['records']:,} records: {rate_of(reference):,.0f} rec/s "
          f"(engine on the same sample: {reference['records'] / reference['parts']['engine on the same sample']:,.0f}"
          f" rec/s; same prices: {reference['identical_prices']})")
    engines = {}
    for n in sizes:
        made = stage("files", "--records", str(n), "--out", args.out)
        baseline = stage("polars", "--csv", made["csv"], "--out", args.out)
        engine = engines[n] = stage("engine", "--csv", made["csv"], "--out", args.out)
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
    print(f"\nimport_file (file -> mediated -> rated -> stored and booked), the same CSV, into a fresh database "
          f"with generate.py's population ({args.subscribers:,} subscribers, bench/population.py; "
          f"set-up not counted):")
    for n, engine in engines.items():
        if n > args.db_max:
            print(f"  N = {n:,}: skipped (BENCH_DB_MAX={args.db_max:,}; BENCH_DB_MAX={n} make bench runs it)")
            continue
        csv = str(Path(args.out) / f"cdr-{n}.csv")
        for url in (f"sqlite:///{Path(args.out) / 'bench.sqlite3'}", args.postgres):
            result = stage("db", "--url", url, "--csv", csv, "--records", str(n), "--subscribers",
                           str(args.subscribers), "--out", args.out)
            print(line(f"N = {n:,} {result['database']}", result))
            store = result["parts"]["of which _store (bulk insert + bookings)"]
            book = result["parts"]["of which book_usage (ledger entries, pockets)"]
            total = result["parts"]["import_file"]
            print(f"      import_file {total:.2f} s; of which storing and booking (_store) {store:.2f} s "
                  f"({store / total:.0%}), of which booking takes and money (book_usage) {book:.2f} s")
            print(f"      rated {result['rated']:,}, suspended {result['suspended']}, rows stored "
                  f"{result['stored_rows']:,}, balances verify after: {result['balances_verified']}")
            print("      set-up (not counted) " + f"{result['setup_seconds']:.1f} s: " + ", ".join(
                f"{k} {v:.1f} s" for k, v in result["setup"].items()))
            same = result["charged_micros"] == engine["charged_micros"]
            print(f"      rated total {result['charged_micros']:,} micros; (b) on the same CSV "
                  f"{engine['charged_micros']:,}: {'same' if same else 'different'}"
                  + ("" if same else " (not comparable: the records were folded onto fewer subscribers)"
                     if args.subscribers < SUBSCRIBERS else
                     " (the product prices the records of 1 April local time in the April bill cycle: "
                     "new tier count, and the March allowance pockets have ended; (b) has one open-ended cycle)"))


if __name__ == "__main__":
    main()
