"""The rate of one record, as plain values: what real-time charging prices a session with.

`terms(catalog, table, destination, start, tz)` places the record with `lookup.OneRecord`, the
batch engine's `locate` for one record (the same rules: version by local date, longest prefix, time
band; tests/usage/test_locate_one.py compares them), and returns the rate's integers for
`pricing.billed_one` / `pricing.price_one`. Build the `Catalog` once per tariff revision and keep it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from obol.catalog.rates import RateFrames
from obol.usage.rating.lookup import OneRecord, _Catalog

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
    one = catalog.__dict__.get("_one")
    if one is None:
        one = catalog.__dict__["_one"] = OneRecord(catalog)
    found = one.locate(table, destination or "", start, tz)
    if isinstance(found, str):
        return found
    t, v, g, b, r = found
    rate = catalog.rates.row(r, named=True)
    return Terms(
        rate_table=table, currency=catalog.currencies[t], kind=kind,
        tariff_version_id=int(catalog.versions["version_id"][v]), destination_group=catalog.groups[g],
        time_band=catalog.bands[b], price_micros=rate["price_micros"] or 0,
        first_increment_s=rate["first_increment_s"], next_increment_s=rate["next_increment_s"],
        minimum_charge_micros=rate["minimum_charge_micros"] or 0,
        connection_fee_micros=rate["connection_fee_micros"] or 0, factor=rate["_factor"],
        rounding_factor=rate["_rounding_factor"], tiered=rate["tier_model"] is not None)
