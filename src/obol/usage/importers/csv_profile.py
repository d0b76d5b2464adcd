"""Configurable CSV: any delimited file, described by a column-mapping profile (see docs/usage-formats.md).

Profile options (all optional except `columns`):
    source          record_key prefix and `source` column (default "csv")
    delimiter, quote_char, header (yes/no), field_count (headerless files; default: the most common)
    columns         {field: column name (header files) or column number counting from 1}; fields:
                    id, service, identifier, destination, start, time_zone, duration, volume, events;
                    identifier and start are required
    service         fixed service when no column gives it (voice | sms | mms | data | event | "")
    service_values  {value in the file: service}, e.g. {"MOC": voice, "SMS-MO": sms}
    identifier_kind, country_code, time_format (strftime, "iso" or "epoch"), time_zone, ambiguous_time,
    duration_unit (s | ms | min), volume_unit (B | KB | MB, 1 KB = 1024 B)
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from obol.core.errors import ValidationFailed
from obol.usage.importers.assemble import Spec, assemble, malformed
from obol.usage.importers.base import SERVICES, ImportBatch
from obol.usage.importers.lines import field_counts, read_lines, split_delimited
from obol.usage.importers.profiles import options

FIELDS = ("id", "service", "identifier", "destination", "start", "time_zone", "duration", "volume", "events")

DEFAULTS = {
    "source": "csv", "delimiter": ",", "quote_char": '"', "header": True, "field_count": None,
    "columns": {}, "service": "", "service_values": {},
    "identifier_kind": "msisdn", "country_code": None, "time_format": "%Y-%m-%d %H:%M:%S",
    "time_zone": "UTC", "ambiguous_time": "earliest", "duration_unit": "s", "volume_unit": "B",
}


def spec_from(opts: dict, source: str, path: Path) -> Spec:
    return Spec(source=source, file=path.name, identifier_kind=opts["identifier_kind"],
                time_format=opts["time_format"], time_zone=opts["time_zone"],
                ambiguous_time=opts["ambiguous_time"], duration_unit=opts["duration_unit"],
                volume_unit=opts["volume_unit"],
                country_code=str(opts["country_code"]) if opts["country_code"] is not None else None)


def common_field_count(lines: pl.DataFrame, delimiter: str, quote_char: str | None) -> int:
    """The most common number of fields per line (what a headerless file is meant to have)."""
    counts = lines.select(field_counts(pl.col("raw"), delimiter, quote_char).alias("n")).drop_nulls()
    if counts.height == 0:
        return 0
    return int(counts.group_by("n").len().sort(["len", "n"], descending=[True, False])["n"][0])


class CsvProfileImporter:
    name = "csv"

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch:
        path = Path(path)
        opts = options(profile, DEFAULTS)
        columns = opts["columns"] or {}
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ValidationFailed(f"columns: unknown field(s) {', '.join(unknown)}; fields: {', '.join(FIELDS)}",
                                   field="columns", code="bad_profile")
        for required in ("identifier", "start"):
            if required not in columns:
                raise ValidationFailed(f"columns: {required} must be mapped to a column", field="columns",
                                       code="bad_profile")
        if opts["service"] not in ("", *SERVICES):
            raise ValidationFailed(f"service: {opts['service']!r} is not voice, sms, mms, data or event",
                                   field="service", code="bad_profile")
        spec = spec_from(opts, opts["source"], path)
        delimiter, quote = opts["delimiter"], opts["quote_char"] or None

        lines = read_lines(path)
        if opts["header"]:
            if lines.height == 0:
                return assemble(pl.DataFrame(schema={"line": pl.Int64, "raw": pl.Utf8}), spec)
            head, lines = lines.head(1), lines.slice(1)
            width = head.select(field_counts(pl.col("raw"), delimiter, quote)).item() or 1
            names_frame, _ = split_delimited(head, names=[f"c{i}" for i in range(width)],
                                             delimiter=delimiter, quote_char=quote)
            names = [str(v).strip() for v in names_frame.row(0)[2:]]
        else:
            width = opts["field_count"] or common_field_count(lines, delimiter, quote)
            names = [str(i) for i in range(1, width + 1)]
        picked = {}
        for field, column in columns.items():
            key = str(column)
            if key not in names:
                raise ValidationFailed(f"columns: {field} is mapped to column {column!r}, which the file "
                                       f"does not have (columns: {', '.join(names)})", field=field,
                                       code="unknown_column")
            picked[field] = key
        safe = [f"_c{i}" for i in range(len(names))]
        rows, bad = split_delimited(lines, names=safe, delimiter=delimiter, quote_char=quote)
        by_name = dict(zip(names, safe))

        def col(field: str) -> pl.Expr:
            if field in picked:
                return pl.col(by_name[picked[field]])
            return pl.lit(None, pl.Utf8)

        service = col("service") if "service" in picked else pl.lit(opts["service"])
        if opts["service_values"]:
            mapping = {str(k): str(v) for k, v in opts["service_values"].items()}
            service = service.replace(mapping)
        staged = rows.select("line", "raw", col("id").alias("native_id"), service.alias("service"),
                             *(col(f).alias(f) for f in ("identifier", "destination", "start", "time_zone",
                                                         "duration", "volume", "events")))
        return assemble(staged, spec, rejected=[malformed(bad)])
