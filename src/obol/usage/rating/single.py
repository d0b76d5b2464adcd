"""The rate of one record, as plain values: what real-time charging prices a session with.

`terms(catalog, table, destination, start, tz)` runs the batch engine's own `lookup.locate` on a
one-row frame, so a session is placed by exactly the rules a CDR is (version by local date,
longest prefix, time band); the result's integers then go to `pricing.billed_one` /
`pricing.price_one`. Build the `Catalog` once per tariff revision and keep it: it is the costly part.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from obol.catalog.rates import RateFrames
from obol.usage.rating.lookup import _Catalog, locate, reasons

Catalog = _Catalog


def catalog_of(tariffs: Mapping[str, RateFrames]) -> Catalog:
    return _Catalog(tariffs)


@dataclass(frozen=True)
class Terms:
    rate_table: str
    currency: str
    kind: str
    tariff_version_id: int
    destination_group: str
    time_band: str
    price_micros: int
    first_increment_s: int | None
    next_increment_s: int | None
    minimum_charge_micros: int
    connection_fee_micros: int
    factor: int
    rounding_factor: int
    tiered: bool


def terms(catalog: Catalog, table: str, kind: str, destination: str, start: datetime, tz: str) -> Terms | str:
    """The terms of the rate that prices a record of `table` to `destination` starting at `start`,
    or why there is none (`lookup.REASONS`)."""
    record = pl.DataFrame({"rate_table": [table], "start": [start], "destination": [destination or ""]},
                          schema={"rate_table": pl.String, "start": pl.Datetime("us", "UTC"),
                                  "destination": pl.String})
    codes = locate(record, catalog, tz)
    r = codes["_r"][0]
    if r is None:
        return reasons(codes)[0]
    rate = catalog.rates.row(r, named=True)
    return Terms(
        rate_table=table, currency=catalog.currencies[codes["_t"][0]], kind=kind,
        tariff_version_id=int(catalog.versions["version_id"][codes["_v"][0]]),
        destination_group=catalog.groups[codes["_g"][0]], time_band=catalog.bands[codes["_b"][0]],
        price_micros=rate["price_micros"] or 0, first_increment_s=rate["first_increment_s"],
        next_increment_s=rate["next_increment_s"], minimum_charge_micros=rate["minimum_charge_micros"] or 0,
        connection_fee_micros=rate["connection_fee_micros"] or 0, factor=rate["_factor"],
        rounding_factor=rate["_rounding_factor"], tiered=rate["tier_model"] is not None)
