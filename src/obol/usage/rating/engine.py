"""The usage rating engine: mediated records in, priced records, allowance takes and unrated
records out. Pure (no database, no clock) and vectorised (Polars; no per-record Python).

    rated = rate(records, tariffs, allowances, prior_usage, tz="Europe/Berlin")
    rated.rated     # input columns + destination_group, time_band, tariff_version_id,
                    #   included, charged, billed, price_micros, currency
    rated.takes     # record_key, pocket_id, quantity: book them with the pocket core
    rated.unrated   # input columns + reason (lookup.REASONS)

Steps: lookup.locate (version by local date, longest prefix, time band, rate) ->
allowances.consume (included units, exact split) -> pricing (increments, rounding, tiers,
minimum charge, connection fee). Every rule and rounding: docs/usage-rating.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from obol.catalog.rates import RateFrames
from obol.usage.rating import allowances as allowance_rules
from obol.usage.rating.lookup import locate
from obol.usage.rating.pricing import (
    DEFAULT_DATA_ROUNDING_UNIT,
    MICROS,
    billed_expr,
    factor_expr,
    price,
    unit_factor,
)
from obol.usage.rating.tiers import tier_bounds

RECORD_COLUMNS = {
    "record_key": pl.String, "subscription_id": pl.Int64, "account_id": pl.Int64, "service": pl.String,
    "service_kind": pl.String, "rate_table": pl.String, "start": pl.Datetime("us", "UTC"),
    "quantity": pl.Int64, "destination": pl.String,
}
RATED_COLUMNS = {
    "destination_group": pl.String, "time_band": pl.String, "tariff_version_id": pl.Int64,
    "included": pl.Int64, "charged": pl.Int64, "billed": pl.Int64, "price_micros": pl.Int64,
    "currency": pl.String,
}
_TIER_KEYS = ["subscription_id", "service", "rate_table"]


@dataclass(frozen=True)
class Rated:
    rated: pl.DataFrame
    takes: pl.DataFrame
    unrated: pl.DataFrame


def rate(records: pl.DataFrame, tariffs: Mapping[str, RateFrames], allowances: pl.DataFrame,
         prior_usage: pl.DataFrame, *, tz: str, rounding: str = "half_up") -> Rated:
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"records lack columns {missing}")
    inputs = records.columns
    work = records.with_columns(
        pl.col("start").cast(pl.Datetime("us", "UTC")), pl.col("quantity").cast(pl.Int64),
        pl.col("destination").fill_null("")).with_row_index("_row")

    located = locate(work, tariffs, tz)
    work = work.join(located, on="_row", how="left", maintain_order="left")
    unrated = work.filter(pl.col("reason").is_not_null()).sort("_row").select(*inputs, "reason")
    ok = work.filter(pl.col("reason").is_null()).drop("reason")

    included, takes = allowance_rules.consume(
        ok.select("_row", "record_key", "subscription_id", "service", "start", "destination_group", "quantity"),
        allowances)
    ok = ok.join(included, on="_row", how="left", maintain_order="left").with_columns(
        (pl.col("quantity") - pl.col("included")).alias("charged"),
        factor_expr("unit", ok["unit"]).alias("_factor"),
        pl.col("rounding_unit").fill_null(DEFAULT_DATA_ROUNDING_UNIT)
        .replace_strict(_factors(ok["rounding_unit"]), default=1, return_dtype=pl.Int64).alias("_rounding_factor"))
    ok = ok.with_columns(billed_expr(pl.col("service_kind"), pl.col("charged"), pl.col("_rounding_factor"))
                         .alias("billed"))
    ok = _cycle_counter(ok, prior_usage)
    ok = price(ok, tier_bounds(tariffs, MICROS, unit_factor), rounding)
    rated = ok.sort("_row").select(
        *inputs, *[pl.col(c).cast(d) for c, d in RATED_COLUMNS.items() if c != "price_micros"],
        pl.col("price_micros_out").alias("price_micros")).select(*inputs, *RATED_COLUMNS)
    return Rated(rated, takes, unrated)


def _factors(units: pl.Series) -> dict[str, int]:
    names = set(units.drop_nulls().unique().to_list()) | {DEFAULT_DATA_ROUNDING_UNIT}
    return {u: unit_factor(u) for u in names}


def _cycle_counter(frame: pl.DataFrame, prior_usage: pl.DataFrame) -> pl.DataFrame:
    """`cum_before`: the subscription's billed units of the rate table in the cycle before each
    record: `quantity_before` plus this batch's earlier records (by start, then record_key)."""
    prior = (prior_usage.select(pl.col("subscription_id").cast(pl.Int64), pl.col("service").cast(pl.String),
                                pl.col("rate_table").cast(pl.String),
                                pl.col("quantity_before").cast(pl.Int64))
             .group_by(_TIER_KEYS).agg(pl.col("quantity_before").sum()))
    ordered = frame.sort(*_TIER_KEYS, "start", "record_key").join(
        prior, on=_TIER_KEYS, how="left", maintain_order="left")
    return ordered.with_columns(
        (pl.col("quantity_before").fill_null(0)
         + pl.col("billed").cum_sum().over(_TIER_KEYS) - pl.col("billed")).alias("cum_before")
    ).drop("quantity_before")
