"""Graduated and volume tiers over the billing cycle's usage of a rate table.

The counter is per subscription, service and rate table: `quantity_before` from the caller (the
billed units already rated in the cycle) plus the billed units of this batch's earlier records
(chronological; ties by record_key). A tier bound `up_to` (in the rate's unit) becomes whole
storage units, rounded down: floor(up_to × seconds/bytes per unit). Storage unit number n (n ≥ 1
counted over the cycle) lies in the first tier whose bound is ≥ n (the last tier has no bound).

- graduated: each billed unit of the record is priced at the tier it falls in.
- volume: the record's billed units are all priced at the tier reached by the cycle's usage at
  the end of the record (counter + billed). Earlier records are NOT re-priced when a later record
  moves the cycle into a cheaper tier: the new units get the new tier's price, no adjustment
  line is made (rating is final per record; re-pricing is `rerate`'s business).
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

TIER_BOUNDS = {"rate_table": pl.String, "rate_id": pl.Int64, "position": pl.Int64, "lo": pl.Int64,
               "hi": pl.Int64, "unit_price_micros": pl.Int64}


def tier_bounds(tariffs: Mapping, micros: int, unit_factor) -> pl.DataFrame:
    """Every tier of every table as (rate_table, rate_id, position, lo, hi, unit_price_micros) in
    storage units: the tier holds units lo < n <= hi (hi null: no end). One row per tier, computed
    over the (small) tier frames, not the records."""
    rows = []
    for code, frames in tariffs.items():
        if frames.tiers.height == 0:
            continue
        units = dict(frames.rates.select("rate_id", "unit").unique("rate_id").iter_rows())
        lower: dict[int, int] = {}
        for rate_id, position, up_to, unit_price in frames.tiers.sort("rate_id", "position").select(
                "rate_id", "position", "up_to_micros", "unit_price_micros").iter_rows():
            factor = unit_factor(units.get(rate_id))
            hi = None if up_to is None else up_to * factor // micros
            lo = lower.get(rate_id, 0)
            rows.append((code, rate_id, position, lo, hi, unit_price))
            lower[rate_id] = hi if hi is not None else lo
    return pl.DataFrame(rows, schema=TIER_BOUNDS, orient="row")


def tier_amounts(frame: pl.DataFrame, bounds: pl.DataFrame) -> pl.DataFrame:
    """(_row, _whole, _rest): the record's price is _whole + _rest / _factor micro-units."""
    if frame.height == 0:
        return pl.DataFrame(schema={"_row": pl.UInt32, "_whole": pl.Int64, "_rest": pl.Int64})
    start, end = pl.col("cum_before"), pl.col("cum_before") + pl.col("billed")
    joined = frame.select("_row", "rate_table", "rate_id", "tier_model", "billed", "cum_before", "_factor").join(
        bounds, on=["rate_table", "rate_id"], how="inner")
    upper = pl.col("hi").fill_null(end)
    units = (pl.when(pl.col("tier_model") == "graduated")
             .then((pl.min_horizontal(end, upper) - pl.max_horizontal(start, pl.col("lo"))).clip(0))
             .otherwise(pl.when((end > pl.col("lo")) & (pl.col("hi").is_null() | (end <= pl.col("hi"))))
                        .then(pl.col("billed")).otherwise(0)))
    return (joined.with_columns(units.alias("_units"))
            .group_by("_row").agg(
                ((pl.col("_units") // pl.col("_factor")) * pl.col("unit_price_micros")).sum().alias("_whole"),
                ((pl.col("_units") % pl.col("_factor")) * pl.col("unit_price_micros")).sum().alias("_rest")))
