"""Which rate prices each record: tariff version, destination group, time band, rate row.

Pure and vectorised: every table, version, prefix, band and rate becomes a small integer-keyed
table once, and each record is placed by binary searches and gathers (no per-version or
per-table pass over the records, no sort or join of the records).
A record that cannot be priced gets one reason, checked in this order:
`no_rate_table` (its code is not in `tariffs`), `no_tariff_version` (no version in force on the
local date of its start), `no_destination` (no prefix matches), `no_rate` (no time band covers
its start, no rate for its group and band, or a rate with neither price nor tier model).
"""
from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from obol.catalog.rates import ALL_BANDS, RateFrames, band_positions, local_times, prefix_positions
from obol.usage.rating.pricing import DEFAULT_DATA_ROUNDING_UNIT, unit_factor

REASONS = ("no_rate_table", "no_tariff_version", "no_destination", "no_rate")

# The columns of the rate rows (pricing gathers what it needs by each record's rate row code).
RATE_COLUMNS = {
    "rate_id": pl.Int64, "price_micros": pl.Int64, "unit": pl.String, "first_increment_s": pl.Int64,
    "next_increment_s": pl.Int64, "minimum_charge_micros": pl.Int64, "connection_fee_micros": pl.Int64,
    "rounding_unit": pl.String, "tier_model": pl.String,
}
_DATE_BASE = 1 << 31


def locate(records: pl.DataFrame, catalog: "_Catalog", tz: str) -> pl.DataFrame:
    """For each of `records` (rate_table, start, destination), row for row, the integer codes of
    its table `_t`, version `_v`, group `_g`, band `_b` and rate row `_r` (indexes into the
    catalog's tables; null: not found). `_r` is null exactly when the record is unrated
    (`reasons` tells why). Strings are gathered from the codes only at the end (`engine`)."""
    local = local_times(records["start"], tz)
    table = records["rate_table"].replace_strict(catalog.table_index, default=None, return_dtype=pl.Int64)
    version = _versions_at(catalog.versions, table, local["day"])
    group = catalog.versions["_g_default"].gather(version)
    if catalog.prefixes.height:
        matched = prefix_positions(records["destination"], version, catalog.prefixes["prefix"],
                                   catalog.prefixes["_v"])
        group = group.zip_with(group.is_not_null(), catalog.prefixes["_g"].gather(matched))
    band = _bands(catalog, local.with_columns(version.alias("_set")))
    g, b = len(catalog.groups), len(catalog.bands)
    rate = catalog.rate_index.gather((version * g + group) * b + band)
    # indexes as UInt32: what `gather` takes without a conversion
    return pl.DataFrame({"_t": table, "_v": version, "_g": group, "_b": band, "_r": rate}).cast(pl.UInt32)


def reasons(codes: pl.DataFrame) -> pl.Series:
    """The reason (REASONS) of each row of `locate`'s codes; null when it has a rate."""
    return codes.select(
        pl.when(pl.col("_t").is_null()).then(pl.lit("no_rate_table"))
        .when(pl.col("_v").is_null()).then(pl.lit("no_tariff_version"))
        .when(pl.col("_g").is_null()).then(pl.lit("no_destination"))
        .when(pl.col("_r").is_null()).then(pl.lit("no_rate"))
        .otherwise(pl.lit(None, pl.String)).alias("reason")).to_series()


class _Catalog:
    """Every table's versions, prefixes, bands and rates with integer keys: table `_t`, version
    `_v` (global index), group and band (indexes into `groups` / `bands`). Small: built per call."""

    def __init__(self, tariffs: Mapping[str, RateFrames]):
        self.codes = list(tariffs)
        self.table_index = {code: i for i, code in enumerate(self.codes)}
        self.currencies = [frames.currency for frames in tariffs.values()]
        versions, prefixes, rates, windows, holidays = [], [], [], [], []
        for t, frames in enumerate(tariffs.values()):
            v = (frames.versions.select(pl.lit(t, pl.Int64).alias("_t"), pl.col("version_id").cast(pl.Int64),
                                        pl.col("effective_from").cast(pl.Date),
                                        pl.col("default_group").cast(pl.String))
                 .sort("effective_from", maintain_order=True))
            versions.append(v)
            ids = v.select("_t", "version_id")
            prefixes.append(frames.prefixes.select(pl.lit(t, pl.Int64).alias("_t"), pl.col("version_id").cast(pl.Int64),
                                                   pl.col("prefix").cast(pl.String),
                                                   pl.col("destination_group").cast(pl.String)))
            rates.append(frames.rates.select(pl.lit(t, pl.Int64).alias("_t"), pl.col("version_id").cast(pl.Int64),
                                             pl.col("destination_group").cast(pl.String),
                                             pl.col("time_band").cast(pl.String),
                                             *[pl.col(c).cast(d) for c, d in RATE_COLUMNS.items()]))
            windows.append(frames.bands.select(pl.lit(t, pl.Int64).alias("_t"), pl.col("version_id").cast(pl.Int64),
                                               pl.col("band").cast(pl.String), pl.col("days").cast(pl.String),
                                               pl.col("from_s").cast(pl.Int64), pl.col("to_s").cast(pl.Int64),
                                               pl.col("calendar").cast(pl.String)))
            holidays.append(ids.join(frames.holidays.select(pl.col("calendar").cast(pl.String),
                                                            pl.col("day").cast(pl.Date)), how="cross"))
        versions_schema = {"_t": pl.Int64, "version_id": pl.Int64, "effective_from": pl.Date,
                           "default_group": pl.String}
        self.versions = (pl.concat([pl.DataFrame(schema=versions_schema), *versions])
                         .with_row_index("_v").with_columns(pl.col("_v").cast(pl.Int64)))
        ids = self.versions.select("_t", "version_id", "_v")
        prefix_frame = pl.concat([pl.DataFrame(schema={"_t": pl.Int64, "version_id": pl.Int64, "prefix": pl.String,
                                                       "destination_group": pl.String}), *prefixes])
        rate_frame = pl.concat([pl.DataFrame(schema={"_t": pl.Int64, "version_id": pl.Int64,
                                                     "destination_group": pl.String, "time_band": pl.String,
                                                     **RATE_COLUMNS}), *rates])
        window_frame = pl.concat([pl.DataFrame(schema={"_t": pl.Int64, "version_id": pl.Int64, "band": pl.String,
                                                       "days": pl.String, "from_s": pl.Int64, "to_s": pl.Int64,
                                                       "calendar": pl.String}), *windows])
        holiday_frame = pl.concat([pl.DataFrame(schema={"_t": pl.Int64, "version_id": pl.Int64, "calendar": pl.String,
                                                        "day": pl.Date}), *holidays])
        self.groups = sorted(set(self.versions["default_group"].drop_nulls().to_list())
                             | set(prefix_frame["destination_group"].drop_nulls().to_list())
                             | set(rate_frame["destination_group"].drop_nulls().to_list()))
        self.bands = sorted(set(window_frame["band"].drop_nulls().to_list())
                            | set(rate_frame["time_band"].drop_nulls().to_list()) | {ALL_BANDS})
        group_index = {name: i for i, name in enumerate(self.groups)}
        band_index = {name: i for i, name in enumerate(self.bands)}

        def index(column: str, mapping: dict) -> pl.Expr:
            return pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.Int64)

        self.versions = self.versions.with_columns(index("default_group", group_index).alias("_g_default"))
        self.prefixes = prefix_frame.join(ids, on=["_t", "version_id"]).select(
            "prefix", "_v", index("destination_group", group_index).alias("_g"))
        self.windows = window_frame.join(ids, on=["_t", "version_id"]).select(
            pl.col("_v").alias("_set"), "band", "days", "from_s", "to_s", "calendar",
            index("band", band_index).alias("_b"))
        self.holidays = holiday_frame.join(ids, on=["_t", "version_id"]).select(
            pl.col("_v").alias("_set"), "calendar", "day")
        self.with_bands = set(self.windows["_set"].to_list())
        # the rate of (version, group, band); a rate with neither price nor tier model prices nothing
        usable = (rate_frame.join(ids, on=["_t", "version_id"])
                  .filter(pl.col("price_micros").is_not_null() | pl.col("tier_model").is_not_null())
                  .with_columns(index("destination_group", group_index).alias("_g"),
                                index("time_band", band_index).alias("_b"))
                  .filter(pl.col("_g").is_not_null() & pl.col("_b").is_not_null())
                  .unique(["_v", "_g", "_b"], keep="first", maintain_order=True))
        units = set(usable["unit"].drop_nulls().to_list())
        roundings = set(usable["rounding_unit"].drop_nulls().to_list()) | {DEFAULT_DATA_ROUNDING_UNIT}
        self.rates = usable.with_columns(
            pl.col("unit").replace_strict({u: unit_factor(u) for u in units}, default=1,
                                          return_dtype=pl.Int64).alias("_factor"),
            pl.col("rounding_unit").fill_null(DEFAULT_DATA_ROUNDING_UNIT)
            .replace_strict({u: unit_factor(u) for u in roundings}, default=1, return_dtype=pl.Int64)
            .alias("_rounding_factor"))
        size = max(self.versions.height, 1) * len(self.groups or [None]) * len(self.bands)
        keys = (self.rates["_v"] * len(self.groups) + self.rates["_g"]) * len(self.bands) + self.rates["_b"]
        self.rate_index = pl.Series("rate", [None] * size, dtype=pl.UInt32).scatter(
            keys, pl.int_range(0, self.rates.height, eager=True, dtype=pl.UInt32))


def _versions_at(versions: pl.DataFrame, table: pl.Series, day: pl.Series) -> pl.Series:
    """The global index of the version of `table` in force on `day`: the latest `effective_from`
    on or before it (a binary search over the versions sorted by table and date)."""
    if versions.height == 0:
        return pl.Series("_v", [None] * len(table), dtype=pl.Int64)
    if versions["_t"].is_unique().all():  # one version per table: in force from its date on
        at = versions.select(pl.col("_t").cast(pl.Int64), "_v", "effective_from").sort("_t")
        size = max(int(at["_t"].max()), int(table.max() if table.max() is not None else 0)) + 1
        dense = pl.repeat(None, size, dtype=pl.Int64, eager=True).scatter(
            at["_t"], pl.int_range(0, at.height, eager=True))
        row = dense.gather(table)
        return pl.select(pl.when(day >= at["effective_from"].gather(row)).then(at["_v"].gather(row))
                         ).to_series().alias("_v")
    keys = versions["_t"] * (2 * _DATE_BASE) + versions["effective_from"].cast(pl.Int64) + _DATE_BASE
    wanted = table * (2 * _DATE_BASE) + day.cast(pl.Int64) + _DATE_BASE
    found = pl.select(pl.when(wanted.is_not_null()).then(
        pl.lit(keys).search_sorted(pl.lit(wanted), side="right").cast(pl.Int64) - 1)).to_series()
    found = pl.select(pl.when(found >= 0).then(found)).to_series()
    same = versions["_t"].gather(found) == table
    return pl.select(pl.when(same).then(versions["_v"].gather(found))).to_series().alias("_v")


def _bands(catalog: _Catalog, local: pl.DataFrame) -> pl.Series:
    """The band index of each record: its version's window, or "all" for a version without bands."""
    everything = catalog.bands.index(ALL_BANDS)
    if catalog.windows.height == 0:
        return pl.Series("_b", [everything] * local.height, dtype=pl.Int64)
    position = band_positions(local, catalog.windows, catalog.holidays)
    if len(catalog.with_bands) == catalog.versions.height:
        return catalog.windows["_b"].gather(position).alias("_b")
    with_bands = pl.repeat(False, catalog.versions.height, dtype=pl.Boolean, eager=True).scatter(
        list(catalog.with_bands), True)
    banded = with_bands.gather(local["_set"])
    return pl.select(pl.when(banded).then(catalog.windows["_b"].gather(position))
                     .otherwise(pl.lit(everything, pl.Int64))).to_series().alias("_b")


# --- one record at a time (real-time charging) --------------------------------------------------------

class OneRecord:
    """`locate` for a single record, in plain Python over indexes built once from a `_Catalog`
    (a charging request cannot afford the vectorised set-up per call: ~25 ms against 50,000
    prefixes). The same rules, case by case (tests/usage/test_locate_one.py compares the two):
    version by local date; longest prefix of the destination's leading digits (or of the whole
    string when some prefix is not all digits); band: a holiday window of a calendar having the
    day wins over the weekly ones, and of a day's windows the one starting last at or before the
    second counts, if it has not ended; the rate of (version, group, band)."""

    def __init__(self, catalog: _Catalog):
        import re
        from collections import defaultdict
        self.catalog = catalog
        versions = catalog.versions
        self.versions: dict[int, list[tuple]] = defaultdict(list)  # table -> [(effective_from, _v)] sorted
        for t, v, since in zip(versions["_t"].to_list(), versions["_v"].to_list(),
                               versions["effective_from"].to_list(), strict=True):
            self.versions[t].append((since, v))
        for entries in self.versions.values():
            entries.sort(key=lambda entry: entry[0])  # stable: as `_versions_at`'s search
        self.default_group = catalog.versions["_g_default"].to_list()
        prefixes = catalog.prefixes
        self.digits = bool(prefixes.height) and bool(
            prefixes["prefix"].str.contains(r"^[0-9]{1,15}$").fill_null(False).all()
            and (prefixes["_v"].max() or 0) < 400)
        self.head = re.compile(r"^[0-9]{0,15}")
        self.prefixes: dict[int, dict[str, int]] = defaultdict(dict)  # _v -> {prefix: _g}
        self.lengths: dict[int, list[int]] = {}
        for prefix, v, g in zip(prefixes["prefix"].to_list(), prefixes["_v"].to_list(), prefixes["_g"].to_list(),
                                strict=True):
            self.prefixes[v][prefix] = g  # a prefix twice in a version: the later one, as the search
        for v, table in self.prefixes.items():
            self.lengths[v] = sorted({len(p) for p in table}, reverse=True)
        self.weekly: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        self.holiday: dict[int, list[tuple[str, int, int, int]]] = defaultdict(list)
        for position, (v, days, start, end, calendar) in enumerate(catalog.windows.select(
                "_set", "days", "from_s", "to_s", "calendar").iter_rows()):
            if calendar is None:
                for day in set(days or ""):
                    self.weekly[(v, int(day))].append((start, end, position))
            else:
                self.holiday[v].append((calendar, start, end, position))
        self.days: dict[tuple[int, str], set] = defaultdict(set)
        for v, calendar, day in catalog.holidays.iter_rows():
            self.days[(v, calendar)].add(day)
        self.band_of = catalog.windows["_b"].to_list()
        self.everything = catalog.bands.index(ALL_BANDS)
        self.rate_index = catalog.rate_index.to_list()

    def locate(self, table: str, destination: str, start, tz: str) -> tuple[int | None, ...] | str:
        """(_t, _v, _g, _b, _r) of the record, or the reason it has no rate."""
        from zoneinfo import ZoneInfo
        t = self.catalog.table_index.get(table)
        if t is None:
            return "no_rate_table"
        local = start.astimezone(ZoneInfo(tz))
        day = local.date()
        v = None
        for since, candidate in self.versions.get(t, ()):
            if since <= day:
                v = candidate
        if v is None:
            return "no_tariff_version"
        g = self.default_group[v]
        if g is None:
            g = self._group(v, destination or "")
        if g is None:
            return "no_destination"
        b = self._band(v, local.isoweekday(), local.hour * 3600 + local.minute * 60 + local.second, day)
        if b is None:
            return "no_rate"
        catalog = self.catalog
        r = self.rate_index[(v * len(catalog.groups) + g) * len(catalog.bands) + b]
        if r is None:
            return "no_rate"
        return t, v, g, b, r

    def _group(self, v: int, destination: str) -> int | None:
        table = self.prefixes.get(v)
        if not table:
            return None
        text = self.head.match(destination).group(0) if self.digits else destination
        for length in self.lengths[v]:
            if length <= len(text) and (g := table.get(text[:length])) is not None:
                return g
        return None

    def _band(self, v: int, weekday: int, second: int, day) -> int | None:
        if v not in self.catalog.with_bands:
            return self.everything
        on_day = [(start, end, position) for calendar, start, end, position in self.holiday.get(v, ())
                  if day in self.days.get((v, calendar), ())]
        for windows in (on_day, self.weekly.get((v, weekday), [])):
            position = _last_started(windows, second)
            if position is not None:
                return self.band_of[position]
        return None


def _last_started(windows: list[tuple[int, int, int]], second: int) -> int | None:
    """The window (start, end, position) starting last at or before `second` (of equal starts the
    later position), if it has not ended by then."""
    best = None
    for start, end, position in windows:
        if start <= second and (best is None or (start, position) >= (best[0], best[2])):
            best = (start, end, position)
    if best is None or second >= best[1]:
        return None
    return best[2]
