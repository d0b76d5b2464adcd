"""Vectorised normalisation of raw text fields: identifiers, numbers, quantities, times.

The identifier rules are those of `obol.subscriptions.identifiers.normalise` (one rule, written
here as Polars expressions so a million records need no Python loop). Each function returns an
expression that is null where the value is not valid; the caller turns nulls into errors.
"""
from __future__ import annotations

import zoneinfo
from functools import lru_cache

import polars as pl

from obol.core.errors import ValidationFailed

_NOISE = r"[\s\-()]"


def msisdn(raw: pl.Expr, *, country_code: str | None = None) -> pl.Expr:
    """E.164 digits: '+49 151 2345-6789', '0049151...', '49151...' -> '49151...'.

    Like `identifiers.normalise("msisdn", ...)`: strip spaces, dashes and brackets, then a leading '+'
    or '00'; the rest must be 6-15 digits. With `country_code` (e.g. "49") a national number with a
    single leading 0 ('0151...') gets the country code (an option normalise does not have)."""
    return raw.map_batches(lambda s: _with_fast_path(s, r"^[1-9]\d{5,14}$", _msisdn_rule, country_code),
                           return_dtype=pl.Utf8)


def _msisdn_rule(raw: pl.Expr, country_code: str | None) -> pl.Expr:
    digits = _dial_prefix(raw.str.replace_all(_NOISE, ""), country_code)
    return digits.str.extract(r"^(\d{6,15})$", 1)


def _dial_prefix(digits: pl.Expr, country_code: str | None) -> pl.Expr:
    """A leading '+' or '00' dropped; with a country code a leading single 0 replaced by it (each
    rule on the original text: '+0151' stays '0151'). One pass per rule, no repeated sub-expression."""
    if country_code and not country_code.startswith("0"):
        digits = digits.str.replace(r"^0([1-9])", f"{country_code}${{1}}")  # then it starts with the code
        return digits.str.replace(r"^(?:\+|00)", "")
    if country_code:  # a code starting with 0 could itself look like a prefix: the rules one by one
        return (pl.when(digits.str.starts_with("+")).then(digits.str.slice(1))
                .when(digits.str.starts_with("00")).then(digits.str.slice(2))
                .when(digits.str.contains(r"^0[1-9]")).then(pl.lit(country_code) + digits.str.slice(1))
                .otherwise(digits))
    return digits.str.replace(r"^(?:\+|00)", "")


def _with_fast_path(values: pl.Series, clean: str, rule, *args) -> pl.Series:
    """`rule(values)` computed only for the values that do not match `clean` (a pattern of values the
    rule returns unchanged, e.g. plain digits): most values of a file are already clean."""
    if values.dtype != pl.Utf8:
        values = values.cast(pl.Utf8)
    fast = values.str.contains(clean).fill_null(False)
    if fast.all():
        return values.rename("")
    rest = values.to_frame("v").with_row_index("_i").filter(~fast)
    fixed = rest.select(rule(pl.col("v"), *args)).to_series()
    return values.clone().scatter(rest["_i"], fixed).rename("")


def identifier(kind: str, raw: pl.Expr, *, country_code: str | None = None) -> pl.Expr:
    """Normalized identifier of `kind`, null when invalid (empty counts as invalid)."""
    value = raw.str.strip_chars()
    if kind == "msisdn":
        return msisdn(raw, country_code=country_code)
    if kind == "imsi":
        return pl.when(value.str.contains(r"^\d{14,15}$")).then(value)
    if kind == "username":
        return pl.when(value != "").then(value.str.to_lowercase())
    if kind in ("account_code", "external_id"):
        return pl.when(value != "").then(value)
    raise ValidationFailed(f"identifier_kind: {kind!r} is not an identifier kind "
                           "(msisdn, imsi, username, account_code, external_id)", field="identifier_kind")


def destination(raw: pl.Expr, *, country_code: str | None = None) -> pl.Expr:
    """Dialled number as digits ('' when empty): '+44 20 ...' and '0044...' -> '4420...'; with a
    country code, '0151...' -> '49151...'. Null when anything but digits remains (e.g. 's', '*97')."""
    return raw.fill_null("").map_batches(
        lambda s: _with_fast_path(s, r"^(?:[1-9]\d{0,19})?$", _destination_rule, country_code), return_dtype=pl.Utf8)


def _destination_rule(raw: pl.Expr, country_code: str | None) -> pl.Expr:
    digits = _dial_prefix(raw.fill_null("").str.replace_all(_NOISE, ""), country_code)
    return digits.str.extract(r"^(\d{0,20})$", 1)


# Quantities -------------------------------------------------------------------------------------

_NUMBER = r"^\s*(-?)(\d{1,15})(?:\.(\d{1,6})\d*)?\s*$"
MICRO = 1_000_000


def quantity_micro(raw: pl.Expr) -> pl.Expr:
    """A decimal text as integer millionths (exact; digits beyond 6 decimals are ignored), signed;
    null when not a number. No float is involved."""
    return raw.map_batches(_quantity_micro, return_dtype=pl.Int64)


def _quantity_micro(values: pl.Series) -> pl.Series:
    """Plain integers ('61', '-12': most quantities) are cast directly; the rest, if any, through the
    full pattern."""
    if values.dtype != pl.Utf8:
        values = values.cast(pl.Utf8)
    plain = values.str.contains(r"^-?[0-9]{1,15}$").fill_null(False)
    result = pl.select(pl.when(plain).then(values.cast(pl.Int64, strict=False) * MICRO)).to_series()
    other = values.is_not_null() & ~plain & (values != "")
    if not other.any():
        return result.rename("")
    rest = values.to_frame("v").with_row_index("_i").filter(other)
    fixed = rest.select(_quantity_rule(pl.col("v"))).to_series()
    return result.scatter(rest["_i"], fixed).rename("")


def _quantity_rule(raw: pl.Expr) -> pl.Expr:
    text = raw.fill_null("")
    sign = text.str.extract(_NUMBER, 1)
    whole = text.str.extract(_NUMBER, 2).cast(pl.Int64, strict=False)
    frac = text.str.extract(_NUMBER, 3).fill_null("").str.pad_end(6, "0").cast(pl.Int64, strict=False)
    value = whole * MICRO + frac
    return pl.when(sign == "-").then(-value).otherwise(value)


def whole_units(micro: pl.Expr, factor: int, divisor: int = 1) -> pl.Expr:
    """ceil(micro / 1e6 * factor / divisor) in integers: a started second or byte counts as whole."""
    scaled = micro * factor
    den = MICRO * divisor
    return (scaled + (den - 1)) // den


DURATION_UNITS = {"s": (1, 1), "ms": (1, 1000), "min": (60, 1)}
VOLUME_UNITS = {"B": (1, 1), "KB": (1024, 1), "MB": (1024 * 1024, 1)}


# Times ------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def is_zone(name: str | None) -> bool:
    return bool(name) and name in _zones()


def require_zone(name: str, field: str = "time_zone") -> str:
    if not is_zone(name):
        raise ValidationFailed(f"{field}: {name!r} is not an IANA time zone (e.g. Europe/Berlin)",
                               field=field, code="unknown_time_zone")
    return name


ISO = "iso"
EPOCH = "epoch"
_ISO_FRACTION = "%Y-%m-%dT%H:%M:%S%.f"


def parse_local(raw: pl.Expr, fmt: str) -> tuple[pl.Expr, pl.Expr]:
    """(aware UTC time or null, naive local time or null) from text in `fmt`.

    fmt is a strftime format, "iso" (ISO 8601, with or without offset, 'T' or space, optional
    fraction, 'Z') or "epoch" (Unix seconds, always UTC). Exactly one of the two is non-null for a
    valid value."""
    text = raw.fill_null("").str.strip_chars()
    utc = pl.Datetime("us", "UTC")
    if fmt == EPOCH:
        seconds = text.cast(pl.Int64, strict=False)
        return pl.from_epoch(seconds, time_unit="s").dt.replace_time_zone("UTC"), pl.lit(None, pl.Datetime("us"))
    if fmt == ISO:
        text = text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T").str.replace(r"Z$", "+00:00")
        aware = text.str.strptime(utc, _ISO_FRACTION + "%:z", strict=False, cache=False)
        naive = text.str.strptime(pl.Datetime("us"), _ISO_FRACTION, strict=False, cache=False)
        return aware, naive
    if "%z" in fmt or "%:z" in fmt or "%#z" in fmt:
        return text.str.strptime(utc, fmt, strict=False, cache=False), pl.lit(None, pl.Datetime("us"))
    return pl.lit(None, utc), text.str.strptime(pl.Datetime("us"), fmt, strict=False, cache=False)


def localize(naive: pl.Expr, zone: pl.Expr, zones: list[str], ambiguous: str) -> pl.Expr:
    """Naive local times -> UTC, each in its row's zone (one of the few valid `zones`).

    A time skipped by a DST change (02:30 on the spring-forward day) becomes null; a doubled one
    (02:30 on the fall-back day) takes the `ambiguous` choice: "earliest", "latest" or "null"."""
    result = pl.lit(None, pl.Datetime("us", "UTC"))
    for name in zones:
        in_zone = (naive.dt.replace_time_zone(name, ambiguous=ambiguous, non_existent="null")
                   .dt.convert_time_zone("UTC"))
        result = pl.when(zone == name).then(in_zone).otherwise(result)
    return result
