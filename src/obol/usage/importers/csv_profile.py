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
from obol.usage.importers.lines import (BOM, blocks, fast_prerequisites, field_counts, first_line, lines_of,
                                        read_lines, split_careful, split_delimited, split_fast)
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

        names, picked = self._first_line_columns(path, opts, columns, delimiter, quote)
        if names is not None:  # block-wise: each block proven well-formed is one read_csv
            batch = self._read_blocks(path, opts, spec, names, picked, delimiter, quote)
            if batch is not None:
                return batch
        # the careful path for the whole file: every line counted and split on its own
        lines = read_lines(path)
        if opts["header"] and lines.height == 0:
            return assemble(pl.DataFrame(schema={"line": pl.Int64, "raw": pl.Utf8}), spec, path=path)
        if names is None or not opts["header"]:  # the header (line 1) is the same on both paths
            names, picked = self._columns(lines, opts, columns, delimiter, quote, first=False)
        skip = 1 if opts["header"] else 0
        rows, bad = split_delimited(lines.slice(skip), names=[f"_c{i}" for i in range(len(names))],
                                    delimiter=delimiter, quote_char=quote)
        del lines
        return assemble(self._staged(rows, opts, names, picked), spec, rejected=[malformed(bad)], path=path)

    def _first_line_columns(self, path: Path, opts: dict, columns: dict, delimiter: str, quote: str | None
                            ) -> tuple[list[str] | None, dict[str, str] | None]:
        """The columns from the first physical line, when the block-wise path may be tried: the delimiter
        and quote character are single bytes, the first line is not blank and its columns fit the profile.
        (None, None) otherwise: the careful path decides (and raises a profile error again if it holds)."""
        if not fast_prerequisites(b"", delimiter, quote):
            return None, None
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
            while b"\n" not in head:
                more = handle.read(1024 * 1024)
                if not more:
                    break
                head += more
        head = head.removeprefix(BOM)
        end = head.find(b"\n")
        if not fast_prerequisites(head if end < 0 else head[:end + 1], delimiter, quote):
            return None, None
        top = pl.DataFrame({"line": [1], "raw": [first_line(head)]}, schema={"line": pl.Int64, "raw": pl.Utf8})
        if not top["raw"].str.strip_chars().item():
            return None, None
        try:
            return self._columns(top, opts, columns, delimiter, quote, first=True)
        except ValidationFailed:
            return None, None

    def _read_blocks(self, path: Path, opts: dict, spec: Spec, names: list[str], picked: dict[str, str],
                     delimiter: str, quote: str | None) -> ImportBatch | None:
        """Read and assemble the file block by block (lines.blocks): a block proven well-formed is parsed
        by one read_csv (lines.split_fast), any other block line by line (lines.split_careful); only one
        block's text is held at a time. Results are those of the careful path for the whole file. None
        when that is not certain: a headerless file without `field_count` whose most common field count
        is not the first line's."""
        safe = [f"_c{i}" for i in range(len(names))]
        n = len(names)
        counts: dict[int, int] = {}  # field count -> lines, for a headerless file without field_count
        tally = not opts["header"] and not opts["field_count"]
        records, errors = [], []
        for first, data in blocks(path):
            skip = 1 if first == 1 and opts["header"] else 0
            piece = data[len(BOM):] if first == 1 and data.startswith(BOM) else data
            rows = None
            if fast_prerequisites(piece, delimiter, quote):
                rows = split_fast(piece, names=safe, delimiter=delimiter, quote_char=quote, skip=skip, first=first)
            del piece
            if rows is not None:
                bad = pl.DataFrame(schema={"line": pl.Int64, "raw": pl.Utf8, "message": pl.Utf8})
                if tally:
                    counts[n] = counts.get(n, 0) + rows.height
            else:
                lines = lines_of(data, first)
                if skip:
                    lines = lines.slice(1)
                if tally:
                    for k, c in lines.select(field_counts(pl.col("raw"), delimiter, quote).alias("n")).drop_nulls(
                            ).group_by("n").len().iter_rows():
                        counts[k] = counts.get(k, 0) + c
                rows, bad = split_careful(lines, names=safe, delimiter=delimiter, quote_char=quote)
                del lines
            del data
            part = assemble(self._staged(rows, opts, names, picked), spec, rejected=[malformed(bad)], path=path,
                            fill_raw=False)
            del rows
            records.append(part.records)
            errors.append(part.errors)
        if tally and counts and min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] != n:
            return None
        if not records:
            return assemble(pl.DataFrame(schema={"line": pl.Int64, "raw": pl.Utf8}), spec, path=path)
        batch = ImportBatch(records=pl.concat(records, how="vertical"),
                            errors=pl.concat(errors, how="vertical").sort("line"), path=path)
        batch.errors = batch.fill_raw(batch.errors)
        return batch

    @staticmethod
    def _staged(rows: pl.DataFrame, opts: dict, names: list[str], picked: dict[str, str]) -> pl.DataFrame:
        """The split rows (line, raw, _c0.._cn) as the staged columns `assemble` reads."""
        by_name = dict(zip(names, (f"_c{i}" for i in range(len(names)))))

        def col(field: str) -> pl.Expr:
            if field in picked:
                return pl.col(by_name[picked[field]])
            return pl.lit(None, pl.Utf8)

        service = col("service") if "service" in picked else pl.lit(opts["service"])
        if opts["service_values"]:
            mapping = {str(k): str(v) for k, v in opts["service_values"].items()}
            service = service.replace(mapping)
        return rows.select("line", "raw", col("id").alias("native_id"), service.alias("service"),
                           *(col(f).alias(f) for f in ("identifier", "destination", "start", "time_zone",
                                                       "duration", "volume", "events")))

    @staticmethod
    def _columns(lines: pl.DataFrame, opts: dict, columns: dict, delimiter: str, quote: str | None, *,
                 first: bool) -> tuple[list[str], dict[str, str]]:
        """The file's column names (the header's, or "1".."n") and {field: column name} of the mapped
        fields. Without a header and `field_count`, n is the most common field count (`first`: the
        first line's, which the fast path then proves every line has)."""
        if opts["header"]:
            head = lines.head(1)
            width = head.select(field_counts(pl.col("raw"), delimiter, quote)).item() or 1
            names_frame, _ = split_delimited(head, names=[f"c{i}" for i in range(width)],
                                             delimiter=delimiter, quote_char=quote)
            names = [str(v).strip() for v in names_frame.row(0)[2:]]
        else:
            width = opts["field_count"] or (lines.head(1).select(field_counts(pl.col("raw"), delimiter, quote)).item()
                                            if first else common_field_count(lines, delimiter, quote))
            names = [str(i) for i in range(1, width + 1)]
        picked = {}
        for field, column in columns.items():
            key = str(column)
            if key not in names:
                raise ValidationFailed(f"columns: {field} is mapped to column {column!r}, which the file "
                                       f"does not have (columns: {', '.join(names)})", field=field,
                                       code="unknown_column")
            picked[field] = key
        return names, picked
