"""From a format's staged text columns to normalized records and per-line errors (shared by all importers).

A format module reads its file into a *staged* frame of Utf8 columns, one row per data line:

    line, raw, native_id, service, identifier, destination, start, time_zone, duration, volume, events

(`native_id`, `time_zone`, `duration`, `volume`, `events` may be null). `assemble` parses and
validates them with Polars expressions, gives every valid row its stable key and returns an
`ImportBatch`; each invalid row becomes exactly one error (the first check it fails, in the order
of CHECKS below).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from obol.core.errors import ValidationFailed
from obol.usage.importers import normalize as n
from obol.usage.importers.base import ERROR_SCHEMA, IDENTIFIER_KINDS, RECORD_SCHEMA, SERVICES, ImportBatch

STAGED_COLUMNS = ("line", "raw", "native_id", "service", "identifier", "destination", "start", "time_zone",
                  "duration", "volume", "events")


@dataclass(frozen=True)
class Spec:
    """How to read the staged text of one file."""
    source: str
    file: str
    identifier_kind: str = "msisdn"
    time_format: str = "%Y-%m-%d %H:%M:%S"
    time_zone: str = "UTC"          # for times without an offset, unless the row names its own zone
    ambiguous_time: str = "earliest"  # fall-back hour: earliest | latest | error
    duration_unit: str = "s"
    volume_unit: str = "B"
    country_code: str | None = None  # e.g. "49": national '0151...' -> '49151...'

    def __post_init__(self):
        if self.identifier_kind not in IDENTIFIER_KINDS:
            raise ValidationFailed(f"identifier_kind: {self.identifier_kind!r} is not one of "
                                   f"{', '.join(IDENTIFIER_KINDS)}", field="identifier_kind")
        n.require_zone(self.time_zone)
        if self.ambiguous_time not in ("earliest", "latest", "error"):
            raise ValidationFailed(f"ambiguous_time: {self.ambiguous_time!r} is not earliest, latest or error",
                                   field="ambiguous_time")
        if self.duration_unit not in n.DURATION_UNITS:
            raise ValidationFailed(f"duration_unit: {self.duration_unit!r} is not s, ms or min",
                                   field="duration_unit")
        if self.volume_unit not in n.VOLUME_UNITS:
            raise ValidationFailed(f"volume_unit: {self.volume_unit!r} is not B, KB or MB", field="volume_unit")
        if self.country_code is not None and not str(self.country_code).isdigit():
            raise ValidationFailed(f"country_code: {self.country_code!r} is not digits (e.g. 49)",
                                   field="country_code")


def _said(column: str) -> pl.Expr:
    return pl.col(column).fill_null("").str.strip_chars()


def _blank(column: str) -> pl.Expr:
    """_said(column) == "" without building the stripped strings."""
    return pl.col(column).fill_null("").str.contains(r"^\s*$")


def _bad(field: str, text: str) -> pl.Expr:
    """'field: "value" text' for the message column."""
    return pl.format('{}: "{}" {}', pl.lit(field), pl.col(field).fill_null(""), pl.lit(text))


def _quantity_checks(column: str, required: pl.Expr, micro: str, whole: bool = False) -> list[tuple]:
    return [
        (required & pl.col(f"_blank_{column}"), "missing_field", column, pl.lit(f"{column}: is required")),
        (~pl.col(f"_blank_{column}") & pl.col(micro).is_null(), "bad_quantity", column,
         _bad(column, "is not a number")),
        (pl.col(micro) < 0, "negative_quantity", column, _bad(column, "is negative")),
        (pl.lit(whole) & (pl.col(micro) % n.MICRO != 0), "bad_quantity", column,
         _bad(column, "is not a whole number")),
    ]


def _record_hash(values: pl.Series) -> pl.Series:
    """sha256 (first 32 hex digits) of each joined identifying-fields string: stable across versions,
    files and reruns (Polars' own hash is not)."""
    return pl.Series([hashlib.sha256(v.encode()).hexdigest()[:32] for v in values.to_list()], dtype=pl.Utf8)


def malformed(bad: pl.DataFrame) -> pl.DataFrame:
    """(line, raw, message) lines a format could not split -> rejected rows with reason malformed_line."""
    return bad.select(pl.col("line").cast(pl.Int64), "raw", pl.lit("malformed_line").alias("reason"),
                      pl.lit("").alias("field"), pl.format("line {}: {}", pl.col("line"), pl.col("message"))
                      .alias("message"))


def assemble(staged: pl.DataFrame, spec: Spec, *, rejected: list[pl.DataFrame] = (),
             skipped: dict[str, int] | None = None, path: Path | None = None,
             fill_raw: bool = True) -> ImportBatch:
    """Parse and validate the staged rows. `rejected` are frames (line, raw, reason, field, message) of
    lines the format itself refused (malformed, unknown disposition); they join the errors.

    `raw` may be null in `staged` (a fast path that did not keep the lines): the errors get it from
    `path` (ImportBatch.fill_raw; `fill_raw=False` leaves that to the caller, e.g. once for all the
    blocks of a file); the records never carry it."""
    staged = staged.select(pl.col("line").cast(pl.Int64), *(
        pl.col(c).cast(pl.Utf8) if c in staged.columns else pl.lit(None, pl.Utf8).alias(c)
        for c in STAGED_COLUMNS if c != "line"))
    service = _said("service").str.to_lowercase()
    zone = pl.coalesce(pl.col("time_zone").str.strip_chars().replace("", None), pl.lit(spec.time_zone))
    zones = [z for z in staged.select(zone.unique()).to_series().to_list() if n.is_zone(z)]
    aware, naive = n.parse_local(pl.col("start"), spec.time_format)
    ambiguous = "null" if spec.ambiguous_time == "error" else spec.ambiguous_time
    d_factor, d_div = n.DURATION_UNITS[spec.duration_unit]
    v_factor, v_div = n.VOLUME_UNITS[spec.volume_unit]

    work = staged.with_columns(
        service.alias("_service"),
        zone.alias("_zone"),
        n.identifier(spec.identifier_kind, pl.col("identifier"), country_code=spec.country_code).alias("_id"),
        n.destination(pl.col("destination"), country_code=spec.country_code).alias("_dest"),
        aware.alias("_aware"),
        naive.alias("_naive"),
        n.quantity_micro(pl.col("duration")).alias("_dur"),
        n.quantity_micro(pl.col("volume")).alias("_vol"),
        n.quantity_micro(pl.col("events")).alias("_ev"),
        *(_blank(c).alias(f"_blank_{c}") for c in ("identifier", "start", "duration", "volume", "events")),
    ).with_columns(
        pl.coalesce(pl.col("_aware"), n.localize(pl.col("_naive"), pl.col("_zone"), zones, ambiguous))
        .alias("_start"),
    )
    svc = pl.col("_service")
    no_offset = pl.col("_aware").is_null() & pl.col("_naive").is_not_null()
    checks = [
        (pl.col("_blank_identifier"), "missing_field", "identifier", pl.lit("identifier: is required")),
        (pl.col("_id").is_null(), "bad_number", "identifier",
         _bad("identifier", f"is not a valid {spec.identifier_kind}")),
        (~svc.is_in(["", *SERVICES]), "unknown_value", "service",
         _bad("service", "is not voice, sms, mms, data or event")),
        (pl.col("_blank_start"), "missing_field", "start", pl.lit("start: is required")),
        (no_offset & ~pl.col("_zone").is_in(zones), "unknown_time_zone", "time_zone",
         pl.format('time_zone: "{}" is not an IANA time zone', pl.col("_zone"))),
        (pl.col("_aware").is_null() & pl.col("_naive").is_null(), "bad_time", "start",
         _bad("start", f'is not a time in format "{spec.time_format}"')),
        (pl.col("_start").is_null(), "bad_time", "start",
         pl.format('start: "{}" does not exist or is ambiguous in {} (a daylight-saving change)',
                   pl.col("start"), pl.col("_zone"))),
        (pl.col("_dest").is_null(), "bad_number", "destination", _bad("destination", "is not a number")),
        *_quantity_checks("duration", svc == "voice", "_dur"),
        *_quantity_checks("volume", svc == "data", "_vol"),
        *_quantity_checks("events", pl.lit(False), "_ev", whole=True),
    ]
    # the first check each row fails (each condition evaluated once); texts only for the failing rows
    work = work.with_columns(pl.any_horizontal(*(cond.fill_null(False) for cond, *_ in checks)).alias("_fails"))
    first = pl.lit(None, pl.Int32)
    for index, (cond, *_) in reversed(list(enumerate(checks))):
        first = pl.when(cond.fill_null(False)).then(pl.lit(index, pl.Int32)).otherwise(first)
    failed = work.filter(pl.col("_fails")).with_columns(first.alias("_check"))
    reason = field = message = pl.lit(None, pl.Utf8)
    for index, (_, why, name, text) in reversed(list(enumerate(checks))):
        hit = pl.col("_check") == index
        reason = pl.when(hit).then(pl.lit(why)).otherwise(reason)
        field = pl.when(hit).then(pl.lit(name)).otherwise(field)
        message = pl.when(hit).then(text).otherwise(message)

    errors = failed.select(
        pl.lit(spec.file).alias("file"), "line", reason.alias("reason"),
        field.alias("field"), message.alias("message"), "raw")
    errors = pl.concat([errors.cast(dict(ERROR_SCHEMA)), *(
        r.select(pl.lit(spec.file).alias("file"), "line", "reason", "field", "message", "raw").cast(dict(ERROR_SCHEMA))
        for r in rejected)], how="vertical").sort("line")

    events_default = pl.when(pl.col("_blank_events")).then(pl.lit(1, pl.Int64)).otherwise(pl.col("_ev") // n.MICRO)
    good = work.filter(~pl.col("_fails")).with_columns(
        pl.when(svc.is_in(["voice", ""]) & pl.col("_dur").is_not_null())
        .then(n.whole_units(pl.col("_dur"), d_factor, d_div)).alias("duration_s"),
        pl.when(svc.is_in(["data", ""]) & pl.col("_vol").is_not_null())
        .then(n.whole_units(pl.col("_vol"), v_factor, v_div)).alias("volume_bytes"),
        pl.when(svc.is_in(["sms", "mms", "event"])).then(events_default)
        .when((svc == "") & pl.col("_ev").is_not_null()).then(pl.col("_ev") // n.MICRO).alias("events"),
    )
    records = good.select(
        pl.lit(spec.source).alias("source"), pl.lit(spec.file).alias("file"), "line",
        _record_keys(good, spec).alias("record_key"),
        svc.alias("service"), pl.lit(spec.identifier_kind).alias("identifier_kind"),
        pl.col("_id").alias("identifier"), pl.col("_dest").alias("destination"), pl.col("_start").alias("start"),
        "duration_s", "volume_bytes", "events", pl.lit(None, pl.Utf8).alias("raw"),
    ).cast(dict(RECORD_SCHEMA))
    batch = ImportBatch(records=records, errors=errors, skipped=dict(skipped or {}), path=path)
    if fill_raw:
        batch.errors = batch.fill_raw(errors)
    return batch


def _record_keys(good: pl.DataFrame, spec: Spec) -> pl.Series:
    """"{source}:{native id}", or "{source}:h:{hash}" of the identifying fields for the rows without
    one (the hash only computed for those)."""
    native = _said("native_id")
    keys = good.select(pl.when(native != "").then(pl.lit(f"{spec.source}:") + native)).to_series()
    missing = keys.is_null()
    if not missing.any():
        return keys
    identifying = pl.concat_str([
        pl.lit(spec.identifier_kind), pl.col("_id"), pl.col("_dest"),
        pl.col("_start").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"), pl.col("_service"),
        *(pl.col(c).cast(pl.Utf8).fill_null("") for c in ("duration_s", "volume_bytes", "events")),
    ], separator="\x1f")
    rest = good.with_row_index("_i").filter(missing)
    hashed = rest.select(pl.lit(f"{spec.source}:h:") + identifying.map_batches(_record_hash, return_dtype=pl.Utf8)
                         ).to_series()
    return keys.scatter(rest["_i"], hashed)
