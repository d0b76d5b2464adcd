"""Which rate prices each record: tariff version, destination group, time band, rate row.

Pure and vectorised; the loops run over rate tables and their versions, never over records.
A record that cannot be priced gets one reason, checked in this order:
`no_rate_table` (its code is not in `tariffs`), `no_tariff_version` (no version in force on the
local date of its start), `no_destination` (no prefix matches), `no_rate` (no time band covers
its start, no rate for its group and band, or a rate with neither price nor tier model).
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from obol.catalog.rates import RateFrames, longest_prefix_match, time_bands

REASONS = ("no_rate_table", "no_tariff_version", "no_destination", "no_rate")

# The columns of the rate row a record carries into pricing.
RATE_COLUMNS = {
    "rate_id": pl.Int64, "price_micros": pl.Int64, "unit": pl.String, "first_increment_s": pl.Int64,
    "next_increment_s": pl.Int64, "minimum_charge_micros": pl.Int64, "connection_fee_micros": pl.Int64,
    "rounding_unit": pl.String, "tier_model": pl.String,
}
LOCATED = {"_row": pl.UInt32, "tariff_version_id": pl.Int64, "destination_group": pl.String,
           "time_band": pl.String, **RATE_COLUMNS, "currency": pl.String, "reason": pl.String}


def locate(records: pl.DataFrame, tariffs: Mapping[str, RateFrames], tz: str) -> pl.DataFrame:
    """One row per record (`_row`, `rate_table`, `start`, `destination`): the columns of LOCATED,
    `reason` null when a rate was found."""
    frame = records.select("_row", "rate_table", "start", "destination").with_columns(
        pl.col("start").dt.convert_time_zone(tz).dt.date().alias("_local_date"))
    parts = [_empty()]
    for (code,), group in frame.partition_by("rate_table", as_dict=True, maintain_order=False).items():
        frames = tariffs.get(code) if code is not None else None
        if frames is None:
            parts.append(_failed(group, "no_rate_table"))
            continue
        parts.extend(_locate_table(group, frames, tz))
    return pl.concat(parts, how="diagonal_relaxed").select(
        [pl.col(name).cast(dtype) for name, dtype in LOCATED.items()])


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=LOCATED)


def _failed(group: pl.DataFrame, reason: str) -> pl.DataFrame:
    return group.select("_row", pl.lit(reason).alias("reason"))


def _locate_table(group: pl.DataFrame, frames: RateFrames, tz: str) -> list[pl.DataFrame]:
    versions = (frames.versions.select(pl.col("effective_from").cast(pl.Date), pl.col("version_id"),
                                       pl.col("default_group").cast(pl.String))
                .sort("effective_from"))
    dated = group.sort("_local_date").join_asof(
        versions, left_on="_local_date", right_on="effective_from", strategy="backward")
    parts = [_failed(dated.filter(pl.col("version_id").is_null()), "no_tariff_version")]
    for (version_id,), part in dated.filter(pl.col("version_id").is_not_null()).partition_by(
            "version_id", as_dict=True).items():
        parts.append(_locate_version(part, frames, version_id, tz))
    return parts


def _locate_version(part: pl.DataFrame, frames: RateFrames, version_id: int, tz: str) -> pl.DataFrame:
    default_group = part["default_group"][0]
    if default_group is not None:
        part = part.with_columns(pl.lit(default_group, pl.String).alias("destination_group"))
    else:
        prefixes = frames.prefixes.filter(pl.col("version_id") == version_id)
        destinations = part["destination"].unique()
        matched = longest_prefix_match(destinations, prefixes).select("destination", "destination_group")
        part = part.join(matched, on="destination", how="left", nulls_equal=False)
    bands = frames.bands.filter(pl.col("version_id") == version_id)
    part = part.with_columns(time_bands(part["start"], tz, bands, frames.holidays).alias("time_band"))
    rates = (frames.rates.filter(pl.col("version_id") == version_id)
             .select("destination_group", "time_band", *RATE_COLUMNS))
    located = part.join(rates, on=["destination_group", "time_band"], how="left")
    return located.select(
        "_row", pl.lit(version_id, pl.Int64).alias("tariff_version_id"), "destination_group", "time_band",
        *RATE_COLUMNS, pl.lit(frames.currency, pl.String).alias("currency"),
        pl.when(pl.col("destination_group").is_null()).then(pl.lit("no_destination"))
        .when(pl.col("rate_id").is_null()
              | (pl.col("price_micros").is_null() & pl.col("tier_model").is_null())).then(pl.lit("no_rate"))
        .otherwise(pl.lit(None, pl.String)).alias("reason"))
