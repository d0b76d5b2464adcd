"""A plain per-record rating reference (Python loops, Decimal, the house `round_amount`) and a
builder of `RateFrames` without a database. The vectorised engine must agree with it exactly
(tests/usage/test_rating_properties.py); bench/rating_engine.py times it as the baseline.

Written straight from the rules in docs/usage-rating.md, one record at a time, without Polars
expressions, so that a shared mistake is unlikely.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Context, Decimal
from zoneinfo import ZoneInfo

import polars as pl

from obol.catalog.rates import RateFrames
from obol.core.money import Amount
from obol.core.rounding import RoundingPlace, round_amount

_EXACT = Context(prec=80)
_FACTORS = {"second": 1, "minute": 60, "hour": 3600, "byte": 1, "kilobyte": 1024, "megabyte": 1024 ** 2,
            "gigabyte": 1024 ** 3}


# --- building RateFrames by hand ----------------------------------------------------------------

def rate_row(rate_id, group, band, price_micros, unit="minute", first=None, next_=None, minimum=0, fee=0,
             rounding_unit=None, tier_model=None, tiers=()):
    return {"rate_id": rate_id, "destination_group": group, "time_band": band, "price_micros": price_micros,
            "unit": unit, "first_increment_s": first, "next_increment_s": next_, "minimum_charge_micros": minimum,
            "connection_fee_micros": fee, "rounding_unit": rounding_unit, "rounding": None,
            "tier_model": tier_model, "tiers": list(tiers)}


def frames(code: str, versions: list[dict], *, currency="EUR", kind="voice", holidays=()) -> RateFrames:
    """versions: [{"id", "from": date, "prefixes": {prefix: group} (or "default_group": group),
    "bands": [(band, days, from_s, to_s, calendar)], "rates": [rate_row(...)]}];
    holidays: [(calendar, date, name)]."""
    version_rows, prefix_rows, rate_rows, tier_rows, band_rows = [], [], [], [], []
    for number, v in enumerate(versions, 1):
        version_rows.append((v["id"], number, v["from"], v.get("default_group")))
        for prefix, group in (v.get("prefixes") or {}).items():
            prefix_rows.append((v["id"], v["from"], prefix, len(prefix), group))
        for band in v.get("bands", ()):
            band_rows.append((v["id"], *band))
        for r in v["rates"]:
            rate_rows.append((v["id"], r["rate_id"], r["destination_group"], r["time_band"], r["price_micros"],
                              r["unit"], r["first_increment_s"], r["next_increment_s"],
                              r["minimum_charge_micros"], r["connection_fee_micros"], r["rounding_unit"],
                              r["rounding"], r["tier_model"]))
            for position, (up_to, unit_price) in enumerate(r["tiers"]):
                tier_rows.append((v["id"], r["rate_id"], position, up_to, unit_price))

    def df(rows, schema):
        return pl.DataFrame(rows, schema=schema, orient="row")

    return RateFrames(
        code, currency, kind,
        df(version_rows, {"version_id": pl.Int64, "number": pl.Int32, "effective_from": pl.Date,
                          "default_group": pl.String}),
        df(prefix_rows, {"version_id": pl.Int64, "effective_from": pl.Date, "prefix": pl.String,
                         "prefix_len": pl.Int32, "destination_group": pl.String}),
        df(rate_rows, {"version_id": pl.Int64, "rate_id": pl.Int64, "destination_group": pl.String,
                       "time_band": pl.String, "price_micros": pl.Int64, "unit": pl.String,
                       "first_increment_s": pl.Int64, "next_increment_s": pl.Int64,
                       "minimum_charge_micros": pl.Int64, "connection_fee_micros": pl.Int64,
                       "rounding_unit": pl.String, "rounding": pl.String, "tier_model": pl.String}),
        df(tier_rows, {"version_id": pl.Int64, "rate_id": pl.Int64, "position": pl.Int32,
                       "up_to_micros": pl.Int64, "unit_price_micros": pl.Int64}),
        df(band_rows, {"version_id": pl.Int64, "band": pl.String, "days": pl.String, "from_s": pl.Int64,
                       "to_s": pl.Int64, "calendar": pl.String}),
        df(list(holidays), {"calendar": pl.String, "day": pl.Date, "name": pl.String}),
    )


RECORD_SCHEMA = {"record_key": pl.String, "subscription_id": pl.Int64, "account_id": pl.Int64,
                 "service": pl.String, "service_kind": pl.String, "rate_table": pl.String,
                 "start": pl.Datetime("us", "UTC"), "quantity": pl.Int64, "destination": pl.String}
ALLOWANCE_SCHEMA = {"pocket_id": pl.Int64, "subscription_id": pl.Int64, "service": pl.String,
                    "remaining": pl.Int64, "priority": pl.Int64, "valid_from": pl.Datetime("us", "UTC"),
                    "valid_until": pl.Datetime("us", "UTC"), "destination_groups": pl.List(pl.String)}
PRIOR_SCHEMA = {"subscription_id": pl.Int64, "service": pl.String, "rate_table": pl.String,
                "quantity_before": pl.Int64}


def records_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RECORD_SCHEMA)


def allowances_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ALLOWANCE_SCHEMA)


def prior_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PRIOR_SCHEMA)


# --- the reference ------------------------------------------------------------------------------

def _factor(unit):
    return _FACTORS.get(unit, 1)


def _find_rate(record, table: RateFrames, tz: ZoneInfo, cache):
    """(version_id, group, band, rate dict) or a reason string."""
    start: datetime = record["start"]
    local = start.astimezone(tz)
    versions = cache["versions"]
    version = None
    for v in versions:                       # sorted by effective_from
        if v["effective_from"] <= local.date():
            version = v
    if version is None:
        return "no_tariff_version"
    vid = version["version_id"]
    group = version["default_group"]
    if group is None:
        prefixes = cache["prefixes"].get(vid, {})
        destination = record["destination"] or ""
        for length in range(len(destination), 0, -1):
            if destination[:length] in prefixes:
                group = prefixes[destination[:length]]
                break
    if group is None:
        return "no_destination"
    bands = cache["bands"].get(vid, [])
    second = local.hour * 3600 + local.minute * 60 + local.second
    band = None
    if not bands:
        band = "all"
    else:
        for b in bands:
            if b["calendar"] is not None and local.date() in cache["holidays"].get(b["calendar"], set()) \
                    and b["from_s"] <= second < b["to_s"]:
                band = b["band"]
        if band is None:
            for b in bands:
                if b["calendar"] is None and str(local.isoweekday()) in b["days"] and b["from_s"] <= second < b["to_s"]:
                    band = b["band"]
    if band is None:
        return "no_rate"
    rate = cache["rates"].get((vid, group, band))
    if rate is None or (rate["price_micros"] is None and rate["tier_model"] is None):
        return "no_rate"
    return vid, group, band, rate


def _cache(table: RateFrames):
    prefixes: dict = {}
    for row in table.prefixes.iter_rows(named=True):
        prefixes.setdefault(row["version_id"], {})[row["prefix"]] = row["destination_group"]
    bands: dict = {}
    for row in table.bands.iter_rows(named=True):
        bands.setdefault(row["version_id"], []).append(row)
    holidays: dict = {}
    for row in table.holidays.iter_rows(named=True):
        holidays.setdefault(row["calendar"], set()).add(row["day"])
    tiers: dict = {}
    for row in table.tiers.sort("position").iter_rows(named=True):
        tiers.setdefault(row["rate_id"], []).append(row)
    return {"versions": sorted(table.versions.iter_rows(named=True), key=lambda v: v["effective_from"]),
            "prefixes": prefixes, "bands": bands, "holidays": holidays, "tiers": tiers,
            "rates": {(r["version_id"], r["destination_group"], r["time_band"]): r
                      for r in table.rates.iter_rows(named=True)}}


def _round(value_micros: Decimal, currency: str, rule: str) -> int:
    """Micro-units rounded by the house rounding at the rating place (6 decimals)."""
    amount = Amount(_EXACT.divide(value_micros, Decimal(1_000_000)), currency)
    rounded = round_amount(amount, RoundingPlace.RATING, rule).value
    return int(rounded * 1_000_000)


def _billed(kind, rate, charged):
    if kind == "voice":
        if charged == 0:
            return 0
        first = rate["first_increment_s"] or 60
        step = rate["next_increment_s"] or first
        extra = max(charged - first, 0)
        steps = -(-extra // step)
        return first + steps * step
    if kind == "data":
        unit = _factor(rate["rounding_unit"] or "kilobyte")
        return -(-charged // unit) * unit
    return charged


def _usage_price(rate, tiers, billed, before, factor, currency, rule):
    if rate["tier_model"] is None:
        return _round(_EXACT.divide(Decimal(billed * rate["price_micros"]), Decimal(factor)), currency, rule)
    total = Decimal(0)
    low = 0
    end = before + billed
    for tier in tiers:
        high = None if tier["up_to_micros"] is None else int(
            (Decimal(tier["up_to_micros"]) / Decimal(1_000_000) * factor).to_integral_value(rounding="ROUND_FLOOR"))
        if rate["tier_model"] == "graduated":
            top = end if high is None else min(end, high)
            units = max(top - max(before, low), 0)
            total += _EXACT.divide(Decimal(units * tier["unit_price_micros"]), Decimal(factor))
        elif end > low and (high is None or end <= high):
            total += _EXACT.divide(Decimal(billed * tier["unit_price_micros"]), Decimal(factor))
        low = high if high is not None else low
    return _round(total, currency, rule)


def reference_rate(records: pl.DataFrame, tariffs: dict, allowances: pl.DataFrame, prior_usage: pl.DataFrame,
                   *, tz: str, rounding: str = "half_up"):
    """Returns (rated: {record_key: dict of output fields}, takes: [(record_key, pocket_id, qty)],
    unrated: {record_key: reason})."""
    zone = ZoneInfo(tz)
    caches = {code: _cache(t) for code, t in tariffs.items()}
    pockets = [dict(p) for p in allowances.iter_rows(named=True)]
    counters: dict = {}
    for row in prior_usage.iter_rows(named=True):
        key = (row["subscription_id"], row["service"], row["rate_table"])
        counters[key] = counters.get(key, 0) + row["quantity_before"]
    rated, takes, unrated = {}, [], {}
    for record in sorted(records.iter_rows(named=True), key=lambda r: (r["start"], r["record_key"])):
        table = tariffs.get(record["rate_table"])
        if table is None:
            unrated[record["record_key"]] = "no_rate_table"
            continue
        found = _find_rate(record, table, zone, caches[record["rate_table"]])
        if isinstance(found, str):
            unrated[record["record_key"]] = found
            continue
        vid, group, band, rate = found
        need = record["quantity"]
        included = 0
        usable = [p for p in pockets
                  if p["subscription_id"] == record["subscription_id"] and p["service"] == record["service"]
                  and p["remaining"] > 0
                  and (p["valid_from"] is None or record["start"] >= p["valid_from"])
                  and (p["valid_until"] is None or record["start"] < p["valid_until"])
                  and (not p["destination_groups"] or group in p["destination_groups"])]
        usable.sort(key=lambda p: (0 if p["destination_groups"] else 1, p["priority"],
                                   (0, p["valid_until"]) if p["valid_until"] else (1, None), p["pocket_id"]))
        for pocket in usable:
            if need == 0:
                break
            take = min(need, pocket["remaining"])
            pocket["remaining"] -= take
            need -= take
            included += take
            takes.append((record["record_key"], pocket["pocket_id"], take))
        charged = record["quantity"] - included
        billed = _billed(record["service_kind"], rate, charged)
        key = (record["subscription_id"], record["service"], record["rate_table"])
        before = counters.get(key, 0)
        counters[key] = before + billed
        price = 0
        if charged > 0:
            usage = _usage_price(rate, caches[record["rate_table"]]["tiers"].get(rate["rate_id"], []), billed,
                                 before, _factor(rate["unit"]), table.currency, rounding)
            price = max(usage, rate["minimum_charge_micros"] or 0) + (rate["connection_fee_micros"] or 0)
        rated[record["record_key"]] = {
            "destination_group": group, "time_band": band, "tariff_version_id": vid, "included": included,
            "charged": charged, "billed": billed, "price_micros": price, "currency": table.currency}
    return rated, takes, unrated


def day(text: str) -> date:
    return date.fromisoformat(text)
