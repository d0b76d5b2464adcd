"""The usage rating engine: mediated records in, priced records, allowance takes and unrated
records out. Pure (no database, no clock) and vectorised (Polars; no per-record Python).

    rated = rate(records, tariffs, allowances, prior_usage, tz="Europe/Berlin")
    rated.rated     # input columns + destination_group, time_band, tariff_version_id,
                    #   included, charged, billed, price_micros, currency
    rated.takes     # record_key, pocket_id, quantity: book them with the pocket core
    rated.unrated   # input columns + reason (lookup.REASONS)

Steps: lookup.locate (version by local date, longest prefix, time band, rate) ->
allowances.consume (included units, exact split) -> pricing (increments, rounding, tiers,
minimum charge, connection fee), all in one chronological order of the records (sorted once, or
not at all when they come sorted). Every rule and rounding: docs/usage-rating.md; speed:
docs/usage-performance.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from obol.catalog.rates import RateFrames
from obol.usage.rating import allowances as allowance_rules
from obol.usage.rating.lookup import locate
from obol.catalog.rates import MICROS
from obol.usage.rating.pricing import billed_expr, price, unit_factor
from obol.usage.rating.tiers import tier_amounts, tier_bounds

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
    # Every later step runs in this one chronological order (start, then record_key): allowances
    # and counters are running sums in it, so nothing is sorted again. The mass process hands the
    # records over in that order already; then this is one check, not a sort.
    work, reordered = _chronological(work)

    work = locate(work, tariffs, tz)
    unrated = work.filter(pl.col("reason").is_not_null())
    ok = work.filter(pl.col("reason").is_null()).drop("reason")

    included, takes = allowance_rules.consume(
        ok.select("_row", "record_key", "subscription_id", "service", "start", "destination_group", "quantity"),
        allowances)
    ok = ok.with_columns(included.alias("included")).with_columns(
        (pl.col("quantity") - pl.col("included")).alias("charged"))
    ok = ok.with_columns(billed_expr(pl.col("service_kind"), pl.col("charged"), pl.col("_rounding_factor"))
                         .alias("billed"))
    ok = price(ok, _tiered(ok, prior_usage, tier_bounds(tariffs, MICROS, unit_factor), list(tariffs)), rounding)
    if reordered:
        ok, unrated = ok.sort("_row"), unrated.sort("_row")
    rated = ok.select(*inputs, *[pl.col(c).cast(d) for c, d in RATED_COLUMNS.items() if c != "price_micros"],
                      pl.col("price_micros_out").alias("price_micros")).select(*inputs, *RATED_COLUMNS)
    return Rated(rated, takes, unrated.select(*inputs, "reason"))


def _chronological(work: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """`work` in order of start, then record_key, and whether it had to be sorted."""
    start, key = pl.col("start"), pl.col("record_key")
    step = start.diff()
    in_order = work.select(((step > 0) | ((step == 0) & (key > key.shift()))).slice(1).fill_null(False).all()
                           ).item()
    if in_order:
        return work, False
    return work.sort("start", "record_key"), True


def _tiered(ok: pl.DataFrame, prior_usage: pl.DataFrame, bounds: pl.DataFrame, codes: list[str]) -> pl.DataFrame:
    """(_row, _whole, _rest) of the records priced by tiers. Their counter `cum_before` is the
    subscription's billed units of the rate table in the cycle before each record: `quantity_before`
    plus this batch's earlier records (all records of a table with tiers count, in time order)."""
    tiered_tables = bounds["rate_table"].unique().to_list()
    if not tiered_tables or not ok["tier_model"].is_not_null().any():
        return pl.DataFrame(schema={"_row": pl.UInt32, "_whole": pl.Int64, "_rest": pl.Int64})
    counted = ok.filter(pl.col("rate_table").is_in(tiered_tables)).select(
        "_row", "subscription_id", "service", "rate_table", "rate_id", "tier_model", "billed", "_factor")
    prior = (prior_usage.select(pl.col("subscription_id").cast(pl.Int64), pl.col("service").cast(pl.String),
                                pl.col("rate_table").cast(pl.String),
                                pl.col("quantity_before").cast(pl.Int64))
             .group_by(_TIER_KEYS).agg(pl.col("quantity_before").sum()))
    running = pl.col("billed").cum_sum().over(_TIER_KEYS) - pl.col("billed")
    if prior.height:
        counted = counted.join(prior, on=_TIER_KEYS, how="left", maintain_order="left").with_columns(
            (pl.col("quantity_before").fill_null(0) + running).alias("cum_before"))
    else:
        counted = counted.with_columns(running.alias("cum_before"))
    return tier_amounts(counted.filter(pl.col("tier_model").is_not_null()), bounds)
