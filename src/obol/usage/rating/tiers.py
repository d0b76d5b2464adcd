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


def tier_amounts(frame: pl.DataFrame, per_rate: pl.DataFrame, rates: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """(_whole, _rest) of each row of `frame` (_r, billed, cum_before): the record's price is
    _whole + _rest / _factor micro-units. `per_rate` (_r, _k, lo, hi, unit_price_micros): the k-th
    tier of the catalog's rate row r (`rates`: tier_model, _factor). One pass per tier position
    (a rate has a few), gathers from small per-rate arrays, no join or group-by of the records."""
    n = frame.height
    if n == 0 or per_rate.height == 0:
        zero = pl.repeat(0, n, dtype=pl.Int64, eager=True)
        return zero, zero
    size = rates.height
    r = frame["_r"]
    graduated = (rates["tier_model"] == "graduated").fill_null(False).gather(r)
    factor = rates["_factor"].gather(r)
    start, billed = frame["cum_before"], frame["billed"]
    end = start + billed
    whole = pl.repeat(0, n, dtype=pl.Int64, eager=True)
    rest = pl.repeat(0, n, dtype=pl.Int64, eager=True)
    for k in range(int(per_rate["_k"].max()) + 1):
        tier = per_rate.filter(pl.col("_k") == k)

        def column(name: str) -> pl.Series:
            return pl.repeat(None, size, dtype=pl.Int64, eager=True).scatter(tier["_r"], tier[name]).gather(r)

        present = pl.repeat(False, size, dtype=pl.Boolean, eager=True).scatter(tier["_r"], True).gather(r)
        lo, hi, unit_price = column("lo"), column("hi"), column("unit_price_micros")
        step = pl.select(
            pl.when(pl.lit(present)).then(
                pl.when(pl.lit(graduated))
                .then((pl.min_horizontal(pl.lit(end), pl.lit(hi).fill_null(pl.lit(end)))
                       - pl.max_horizontal(pl.lit(start), pl.lit(lo))).clip(0))
                .otherwise(pl.when((pl.lit(end) > pl.lit(lo)) & (pl.lit(hi).is_null() | (pl.lit(end) <= pl.lit(hi))))
                           .then(pl.lit(billed)).otherwise(0)))
            .alias("units")).with_columns(pl.lit(factor).alias("f"), pl.lit(unit_price).alias("p"))
        parts = step.select(((pl.col("units") // pl.col("f")) * pl.col("p")).fill_null(0).alias("w"),
                            ((pl.col("units") % pl.col("f")) * pl.col("p")).fill_null(0).alias("r"))
        whole, rest = whole + parts["w"], rest + parts["r"]
    return whole.alias("_whole"), rest.alias("_rest")
