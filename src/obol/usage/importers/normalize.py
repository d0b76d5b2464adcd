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
    digits = raw.str.strip_chars().str.replace_all(_NOISE, "")
    digits = (pl.when(digits.str.starts_with("+")).then(digits.str.slice(1))
              .when(digits.str.starts_with("00")).then(digits.str.slice(2))
              .when(pl.lit(bool(country_code)) & digits.str.contains(r"^0[1-9]"))
              .then(pl.lit(country_code or "") + digits.str.slice(1))
              .otherwise(digits))
    return pl.when(digits.str.contains(r"^\d{6,15}$")).then(digits)


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
    digits = raw.fill_null("").str.strip_chars().str.replace_all(_NOISE, "")
    digits = (pl.when(digits.str.starts_with("+")).then(digits.str.slice(1))
              .when(digits.str.starts_with("00")).then(digits.str.slice(2))
              .when(pl.lit(bool(country_code)) & digits.str.contains(r"^0[1-9]"))
              .then(pl.lit(country_code or "") + digits.str.slice(1))
              .otherwise(digits))
    return pl.when(digits.str.contains(r"^\d{0,20}$")).then(digits)


# Quantities -------------------------------------------------------------------------------------

_NUMBER = r"^\s*(-?)(\d{1,15})(?:\.(\d{1,6})\d*)?\s*$"
MICRO = 1_000_000


def quantity_micro(raw: pl.Expr) -> pl.Expr:
    """A decimal text as integer millionths (exact; digits beyond 6 decimals are ignored), signed;
    null when not a number. No float is involved."""
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
        aware = text.str.strptime(utc, _ISO_FRACTION + "%:z", strict=False)
        naive = text.str.strptime(pl.Datetime("us"), _ISO_FRACTION, strict=False)
        return aware, naive
    if "%z" in fmt or "%:z" in fmt or "%#z" in fmt:
        return text.str.strptime(utc, fmt, strict=False), pl.lit(None, pl.Datetime("us"))
    return pl.lit(None, utc), text.str.strptime(pl.Datetime("us"), fmt, strict=False)


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
