"""The benchmark's generated usage (issue 4, Performance): N CDRs, voice 55% / SMS 30% / data 15%,
50,000 destination prefixes, 400,000 subscribers of whom 60% have a voice and a data allowance,
shuffled; the tariffs as `RateFrames` (no database) and the allowances as the engine takes them.

Pseudo-random numbers come from Polars hashing (deterministic, no numpy). `write_csv` writes the
records as an operator CSV that the configurable CSV importer reads with `CSV_PROFILE`.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from tests.usage.rating_reference import frames, rate_row

from obol.usage.mediation import Lookups

SUBSCRIBERS = 400_000
PREFIXES = 50_000
GROUPS = ["national-fixed", "national-mobile", "eu", "world", "premium"]
WEEKLY = [("offpeak", "12345", 0, 8 * 3600, None), ("peak", "12345", 8 * 3600, 20 * 3600, None),
          ("offpeak", "12345", 20 * 3600, 86400, None), ("weekend", "67", 0, 86400, None),
          ("holiday", "", 0, 86400, "de")]
HOLIDAYS = [("de", date(2026, 4, 3), "Karfreitag"), ("de", date(2026, 4, 6), "Ostermontag")]
MSISDN_BASE = 491_510_000_000  # subscriber s has MSISDN 49151 followed by s on 7 digits
CSV_PROFILE = {
    "source": "bench",
    "columns": {"id": "id", "identifier": "msisdn", "service": "service", "destination": "destination",
                "start": "start", "duration": "duration", "volume": "volume"},
}
TS = pl.Datetime("us", "UTC")


def random(n: int, low: int, high: int, seed: int) -> pl.Series:
    """n pseudo-random integers in [low, high)."""
    return (pl.int_range(0, n, eager=True).hash(seed) % (high - low)).cast(pl.Int64) + low


def tariffs():
    """({code: RateFrames}, prefixes): voice and SMS by 50,000 prefixes in 5 groups and 4 bands
    (weekly, weekend, holidays); data graduated (1 GB at 0.01/MB, then 0.005/MB)."""
    digits = random(PREFIXES * 2, 10 ** 4, 10 ** 7, 1).cast(pl.String).unique(maintain_order=True)
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


def records(n: int, prefixes: list[str]) -> pl.DataFrame:
    """N mediated records (the engine's input), shuffled, plus the subscriber's `msisdn`."""
    kinds = pl.Series(["voice"] * 55 + ["sms"] * 30 + ["data"] * 15)
    kind = kinds.gather(random(n, 0, 100, 2))
    subscriber = random(n, 1, SUBSCRIBERS + 1, 3)
    base = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)
    frame = pl.DataFrame({
        "record_key": pl.select(pl.format("bench:{}", pl.int_range(0, n))).to_series(),
        "subscription_id": subscriber, "account_id": subscriber + 1_000_000,
        "service": kind, "service_kind": kind, "rate_table": kind,
        "start": (random(n, 0, 31 * 86400, 4) * 1_000_000 + base).cast(TS),
        "_voice": random(n, 1, 1800, 5), "_data": random(n, 1, 50_000_000, 6),
        "_prefix": pl.Series(prefixes).gather(random(n, 0, len(prefixes), 7)),
        "_tail": random(n, 10 ** 5, 10 ** 8, 8).cast(pl.String),
    })
    return frame.select(
        "record_key", "subscription_id", "account_id", "service", "service_kind", "rate_table", "start",
        pl.when(pl.col("service_kind") == "voice").then("_voice").when(pl.col("service_kind") == "data")
        .then("_data").otherwise(1).cast(pl.Int64).alias("quantity"),
        pl.when(pl.col("service_kind") == "data").then(pl.lit("")).otherwise(pl.col("_prefix") + pl.col("_tail"))
        .alias("destination"),
        (pl.col("subscription_id") + MSISDN_BASE).cast(pl.String).alias("msisdn"),
    ).sample(fraction=1.0, shuffle=True, seed=7)


def allowances() -> pl.DataFrame:
    """60% of the subscribers: 3600 s of voice and 1 GiB of data, open-ended."""
    with_allowance = pl.int_range(1, SUBSCRIBERS + 1, eager=True).filter(random(SUBSCRIBERS, 0, 10, 9) < 6)
    m = len(with_allowance)
    return pl.DataFrame({
        "pocket_id": pl.concat([with_allowance, with_allowance + SUBSCRIBERS]).cast(pl.Int64),
        "subscription_id": pl.concat([with_allowance, with_allowance]).cast(pl.Int64),
        "service": ["voice"] * m + ["data"] * m,
        "remaining": [3600] * m + [1024 ** 3] * m,
        "priority": [100] * (2 * m),
        "valid_from": pl.Series([None] * (2 * m), dtype=TS),
        "valid_until": pl.Series([None] * (2 * m), dtype=TS),
        "destination_groups": pl.Series([[]] * (2 * m), dtype=pl.List(pl.String)),
    })


def no_prior_usage() -> pl.DataFrame:
    return pl.DataFrame(schema={"subscription_id": pl.Int64, "service": pl.String, "rate_table": pl.String,
                                "quantity_before": pl.Int64})


def lookups() -> Lookups:
    """What mediation reads from the database, for the generated subscribers: MSISDN -> subscription
    (active since 2025), one plan whose usage charges name the tables voice / sms / data."""
    ids = pl.int_range(1, SUBSCRIBERS + 1, eager=True, dtype=pl.Int64)
    since = datetime(2025, 1, 1, tzinfo=UTC)
    return Lookups(
        identifiers=pl.DataFrame({"kind": "msisdn", "value": (ids + MSISDN_BASE).cast(pl.String),
                                  "valid_from": pl.Series([since] * SUBSCRIBERS, dtype=TS),
                                  "valid_to": pl.Series([None] * SUBSCRIBERS, dtype=TS), "subscription_id": ids}),
        states=pl.DataFrame({"subscription_id": ids, "account_id": ids + 1_000_000, "plan_id": 1,
                             "status": "active", "state_from": pl.Series([since] * SUBSCRIBERS, dtype=TS)}
                            ).with_columns(pl.col("plan_id").cast(pl.Int64)),
        charges=pl.DataFrame({"plan_id": [1, 1, 1], "version_from": pl.Series([since] * 3, dtype=TS),
                              "service_kind": ["voice", "sms", "data"], "service": ["voice", "sms", "data"],
                              "rate_table": ["voice", "sms", "data"]}),
        accounts=pl.DataFrame({"account_id": ids + 1_000_000, "account_currency": "EUR", "mode": "postpaid"}),
    )


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """The records as an operator CSV (header; id, msisdn, service, destination, start in UTC,
    duration in s for voice, volume in bytes for data; SMS count 1 by default)."""
    frame.select(
        pl.col("record_key").str.strip_prefix("bench:").alias("id"), "msisdn", "service", "destination",
        pl.col("start").dt.strftime("%Y-%m-%d %H:%M:%S").alias("start"),
        pl.when(pl.col("service") == "voice").then(pl.col("quantity")).alias("duration"),
        pl.when(pl.col("service") == "data").then(pl.col("quantity")).alias("volume"),
    ).write_csv(path)
    return path
