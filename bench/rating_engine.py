"""Micro-benchmark of the rating engine (not a test): records/s of `obol.usage.rating.rate` on N
generated records (voice 55% / SMS 30% / data 15%, 50,000 prefixes, 400,000 subscribers, 60% of
them with voice and data allowances, shuffled), peak RSS, and the ratio to the per-record Python
reference (tests/usage/rating_reference.py) on a 20,000-record sample.

    .venv/bin/python bench/rating_engine.py [--records 1000000] [--sample 20000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")

import django

django.setup()

import polars as pl
from bench.generate import allowances, records, tariffs
from tests.usage.rating_reference import reference_rate

from obol.usage.rating import rate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()
    tables, prefixes = tariffs()
    data = records(args.records, prefixes).drop("msisdn")
    pockets = allowances()
    prior = pl.DataFrame(schema={"subscription_id": pl.Int64, "service": pl.String, "rate_table": pl.String,
                                 "quantity_before": pl.Int64})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    result = rate(data, tables, pockets, prior, tz="Europe/Berlin")
    engine_s = time.perf_counter() - began
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine: {args.records:,} records in {engine_s:.2f} s = {args.records / engine_s:,.0f} records/s "
          f"(rated {result.rated.height:,}, unrated {result.unrated.height:,}, takes {result.takes.height:,})")
    print(f"peak RSS: {rss_after:,.0f} MiB (before rating {rss_before:,.0f} MiB)")

    sample = data.head(args.sample)
    began = time.perf_counter()
    rate(sample, tables, pockets, prior, tz="Europe/Berlin")
    engine_sample_s = time.perf_counter() - began
    began = time.perf_counter()
    reference_rate(sample, tables, pockets.join(sample.select("subscription_id").unique(), on="subscription_id",
                                                how="semi"), prior, tz="Europe/Berlin")
    reference_s = time.perf_counter() - began
    print(f"reference (per-record Python) on {args.sample:,}: {args.sample / reference_s:,.0f} records/s; "
          f"engine on the same sample {args.sample / engine_sample_s:,.0f} records/s; "
          f"engine at N vs reference: {(args.records / engine_s) / (args.sample / reference_s):,.1f}x")


if __name__ == "__main__":
    main()
