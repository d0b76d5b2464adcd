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
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")

import django

django.setup()

import polars as pl
from tests.usage.rating_reference import frames, rate_row, reference_rate

from obol.usage.rating import rate

SUBSCRIBERS = 400_000
PREFIXES = 50_000
GROUPS = ["national-fixed", "national-mobile", "eu", "world", "premium"]
WEEKLY = [("offpeak", "12345", 0, 8 * 3600, None), ("peak", "12345", 8 * 3600, 20 * 3600, None),
          ("offpeak", "12345", 20 * 3600, 86400, None), ("weekend", "67", 0, 86400, None),
          ("holiday", "", 0, 86400, "de")]
HOLIDAYS = [("de", date(2026, 4, 3), "Karfreitag"), ("de", date(2026, 4, 6), "Ostermontag")]


def _random(n: int, low: int, high: int, seed: int) -> pl.Series:
    """n pseudo-random integers in [low, high) (Polars hashing; no numpy needed)."""
    return (pl.int_range(0, n, eager=True).hash(seed) % (high - low)).cast(pl.Int64) + low


def tariffs():
    digits = _random(PREFIXES * 2, 10 ** 4, 10 ** 7, 1).cast(pl.String).unique(maintain_order=True)
    prefixes = [p for p in digits.to_list() if len(p) > 1][:PREFIXES - 9] + [str(i) for i in range(1, 10)]
    groups = {p: GROUPS[int(p[-1]) % len(GROUPS)] for p in prefixes}
    voice_rates, sms_rates = [], []
    for i, group in enumerate(GROUPS):
        for j, band in enumerate(["peak", "offpeak", "weekend", "holiday"]):
            first, step = (30, 6) if group == "eu" else (60, 60)
            voice_rates.append(rate_row(100 + 10 * i + j, group, band, 90_000 + 10_000 * j, "minute", first, step,
                                        minimum=990_000 if group == "world" else 0,
                                        fee=200_000 if group == "premium" else 0))
            sms_rates.append(rate_row(200 + 10 * i + j, group, band, 90_000, "sms"))
    version = {"from": date(2025, 1, 1), "prefixes": groups, "bands": WEEKLY}
    data_rate = rate_row(300, "data", "all", None, "megabyte", rounding_unit="kilobyte", tier_model="graduated",
                         tiers=[(1024_000_000, 10_000), (None, 5_000)])
    return {
        "voice": frames("voice", [{**version, "id": 1, "rates": voice_rates}], holidays=HOLIDAYS),
        "sms": frames("sms", [{**version, "id": 2, "rates": sms_rates}], kind="sms", holidays=HOLIDAYS),
        "data": frames("data", [{"id": 3, "from": date(2025, 1, 1), "default_group": "data", "rates": [data_rate]}],
                       kind="data"),
    }, prefixes


def records(n, prefixes):
    kinds = pl.Series(["voice"] * 55 + ["sms"] * 30 + ["data"] * 15)
    kind = kinds.gather(_random(n, 0, 100, 2))
    subscriber = _random(n, 1, SUBSCRIBERS + 1, 3)
    base = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)
    frame = pl.DataFrame({
        "record_key": pl.select(pl.format("bench:{}", pl.int_range(0, n))).to_series(),
        "subscription_id": subscriber, "account_id": subscriber + 1_000_000,
        "service": kind, "service_kind": kind, "rate_table": kind,
        "start": (_random(n, 0, 31 * 86400, 4) * 1_000_000 + base).cast(pl.Datetime("us", "UTC")),
        "_voice": _random(n, 1, 1800, 5), "_data": _random(n, 1, 50_000_000, 6),
        "_prefix": pl.Series(prefixes).gather(_random(n, 0, len(prefixes), 7)),
        "_tail": _random(n, 10 ** 5, 10 ** 8, 8).cast(pl.String),
    })
    return frame.select(
        "record_key", "subscription_id", "account_id", "service", "service_kind", "rate_table", "start",
        pl.when(pl.col("service_kind") == "voice").then("_voice").when(pl.col("service_kind") == "data")
        .then("_data").otherwise(1).cast(pl.Int64).alias("quantity"),
        pl.when(pl.col("service_kind") == "data").then(pl.lit("")).otherwise(pl.col("_prefix") + pl.col("_tail"))
        .alias("destination"),
    ).sample(fraction=1.0, shuffle=True, seed=7)


def allowances():
    with_allowance = pl.int_range(1, SUBSCRIBERS + 1, eager=True).filter(_random(SUBSCRIBERS, 0, 10, 9) < 6)
    m = len(with_allowance)
    return pl.DataFrame({
        "pocket_id": pl.concat([with_allowance, with_allowance + SUBSCRIBERS]).cast(pl.Int64),
        "subscription_id": pl.concat([with_allowance, with_allowance]).cast(pl.Int64),
        "service": ["voice"] * m + ["data"] * m,
        "remaining": [3600] * m + [1024 ** 3] * m,
        "priority": [100] * (2 * m),
        "valid_from": pl.Series([None] * (2 * m), dtype=pl.Datetime("us", "UTC")),
        "valid_until": pl.Series([None] * (2 * m), dtype=pl.Datetime("us", "UTC")),
        "destination_groups": pl.Series([[]] * (2 * m), dtype=pl.List(pl.String)),
    })


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()
    tables, prefixes = tariffs()
    data = records(args.records, prefixes)
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
