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
from obol.catalog.rates import MICROS
from obol.usage.rating.lookup import _Catalog, locate, reasons
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
# What pricing needs of a record's rate row (gathered by its code; units already turned into factors).
_PRICED_BY = ("price_micros", "first_increment_s", "next_increment_s", "minimum_charge_micros",
              "connection_fee_micros", "_factor", "_rounding_factor")


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

    # Records carry small integer codes (table, version, group, band, rate row) through every
    # step; the strings of the output are gathered from them once, at the end.
    catalog = _Catalog(tariffs)
    codes = locate(work, catalog, tz)
    found = codes["_r"].is_not_null()
    if found.all():
        ok, unrated = work, work.clear().with_columns(pl.lit(None, pl.String).alias("reason"))
    else:
        unrated = work.filter(~found).with_columns(reasons(codes.filter(~found)))
        ok, codes = work.filter(found), codes.filter(found)
    r = codes["_r"]
    # what pricing needs of the rate rows, computed per rate row (not per record), then gathered
    rates = catalog.rates.select(*_PRICED_BY, pl.col("tier_model").is_not_null().alias("_by_tiers"))

    included, takes = allowance_rules.consume(
        pl.DataFrame({"subscription_id": ok["subscription_id"], "service": ok["service"], "start": ok["start"],
                      "_g": codes["_g"], "quantity": ok["quantity"]}),
        allowances, catalog.groups)
    priced = pl.DataFrame({
        "service_kind": ok["service_kind"], "charged": ok["quantity"] - included,
        **{name: rates[name].gather(r) for name in rates.columns},
    })
    priced = priced.with_columns(billed_expr(pl.col("service_kind"), pl.col("charged"), pl.col("_rounding_factor"))
                                 .alias("billed"))
    tiered = _tiered(ok, codes, priced["billed"], prior_usage, catalog,
                     tier_bounds(tariffs, MICROS, unit_factor))
    if tiered is not None:
        priced = priced.with_columns(tiered)
    price_micros = price(priced, tiered is not None, rounding)
    # built from the columns as they are (a select would first copy the input into one chunk)
    rated = pl.DataFrame([
        *[ok[c] for c in inputs],
        pl.Series("destination_group", catalog.groups, dtype=pl.String).gather(codes["_g"]),
        pl.Series("time_band", catalog.bands, dtype=pl.String).gather(codes["_b"]),
        catalog.versions["version_id"].gather(codes["_v"]).alias("tariff_version_id"),
        included.alias("included"), priced["charged"], priced["billed"], price_micros.alias("price_micros"),
        pl.Series("currency", catalog.currencies, dtype=pl.String).gather(codes["_t"]),
    ])
    if any(rated.schema[c] != d for c, d in RATED_COLUMNS.items()):
        rated = rated.with_columns(*[pl.col(c).cast(d) for c, d in RATED_COLUMNS.items()])
    rows = ok["_row"]
    # consume gives the takes by record (its chronological position _at), then pocket
    if reordered:
        takes = takes.with_columns(rows.gather(takes["_at"]).alias("_row")).sort("_row", "pocket_id")
    takes = pl.DataFrame([ok["record_key"].gather(takes["_at"]), takes["pocket_id"], takes["quantity"]])
    if reordered:
        rated = rated.gather(rows.arg_sort()) if rated.height else rated
        unrated = unrated.sort("_row")
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


def _tiered(ok: pl.DataFrame, codes: pl.DataFrame, billed: pl.Series, prior_usage: pl.DataFrame,
            catalog: _Catalog, bounds: pl.DataFrame) -> list[pl.Series] | None:
    """`_whole` and `_rest` (one value per record; null for records not priced by tiers), or None
    when no record is priced by tiers (then every record is priced flat). The counter `cum_before`
    is the subscription's billed units of the rate table in the cycle before each record:
    `quantity_before` plus this batch's earlier records (all records of a table with tiers count,
    in time order)."""
    tiered_tables = [catalog.table_index[c] for c in bounds["rate_table"].unique().to_list()
                     if c in catalog.table_index]
    by_tiers = catalog.rates["tier_model"].is_not_null().gather(codes["_r"])
    if not tiered_tables or not by_tiers.any():
        return None
    # the tiers of each catalog rate row (k-th tier of row r), from the (small) bounds
    per_rate = (catalog.rates.with_row_index("_r").select("_r", "_t", "rate_id")
                .join(bounds.with_columns(pl.col("rate_table").replace_strict(catalog.table_index, default=None,
                                                                              return_dtype=pl.Int64).alias("_t")),
                      on=["_t", "rate_id"], how="inner")
                .sort("_r", "position", maintain_order=True)
                .with_columns(pl.int_range(pl.len()).over("_r").alias("_k")))
    has_tiers = pl.repeat(False, catalog.rates.height, dtype=pl.Boolean, eager=True)
    if per_rate.height:
        has_tiers = has_tiers.scatter(per_rate["_r"].unique(), True)
    if not (by_tiers & has_tiers.gather(codes["_r"])).any():
        return None
    counted_at = codes["_t"].is_in(tiered_tables).arg_true()
    counted = pl.DataFrame({
        "_at": counted_at, "subscription_id": ok["subscription_id"].gather(counted_at),
        "service": ok["service"].gather(counted_at), "_t": codes["_t"].gather(counted_at),
        "_r": codes["_r"].gather(counted_at), "billed": billed.gather(counted_at)})
    keys = ["subscription_id", "service", "_t"]
    prior = (prior_usage.select(pl.col("subscription_id").cast(pl.Int64), pl.col("service").cast(pl.String),
                                pl.col("rate_table").cast(pl.String)
                                .replace_strict(catalog.table_index, default=None, return_dtype=pl.UInt32).alias("_t"),
                                pl.col("quantity_before").cast(pl.Int64))
             .filter(pl.col("_t").is_not_null())
             .group_by(keys).agg(pl.col("quantity_before").sum()))
    running = pl.col("billed").cum_sum().over(keys) - pl.col("billed")
    if prior.height:
        counted = counted.join(prior, on=keys, how="left", maintain_order="left").with_columns(
            (pl.col("quantity_before").fill_null(0) + running).alias("cum_before"))
    else:
        counted = counted.with_columns(running.alias("cum_before"))
    counted = counted.filter(pl.lit(by_tiers).gather(pl.col("_at")))
    whole, rest = tier_amounts(counted, per_rate, catalog.rates)
    n = ok.height
    return [pl.repeat(None, n, dtype=pl.Int64, eager=True).scatter(counted["_at"], whole).alias("_whole"),
            pl.repeat(None, n, dtype=pl.Int64, eager=True).scatter(counted["_at"], rest).alias("_rest")]
