"""Asterisk cdr_csv `Master.csv` (no header; one line per call).

Columns, in cdr_csv's fixed order: accountcode, src, dst, dcontext, clid, channel, dstchannel,
lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags, then uniqueid
(cdr.conf [csv] loguniqueid=yes) and userfield (loguserfield=yes). 16, 17 or 18 fields: by default
the most common count in the file decides (17 = uniqueid), or set `uniqueid` / `userfield`.

Charged: disposition ANSWERED, rated on billsec, started at `answer` (billsec counts from it).
NO ANSWER, BUSY, FAILED, CONGESTION are counted in `skipped`; any other disposition is an error.
Times are "%Y-%m-%d %H:%M:%S" in the server's zone (`time_zone`, default UTC; usegmtime=yes means UTC).
Key: "{source}:{uniqueid}" when logged (uniqueid is unique per server: give each server its own
`source`), else a hash of the identifying fields.
Profile options: source (default "asterisk"), identifier ("src" as MSISDN, or "accountcode"),
country_code, time_zone, ambiguous_time, uniqueid, userfield.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from obol.core.errors import ValidationFailed
from obol.usage.importers.assemble import Spec, assemble, malformed
from obol.usage.importers.base import ImportBatch
from obol.usage.importers.csv_profile import common_field_count
from obol.usage.importers.lines import read_lines, split_delimited
from obol.usage.importers.profiles import options

COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
CHARGED = "ANSWERED"
NOT_CHARGED = {"NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed", "CONGESTION": "congestion"}

DEFAULTS = {"source": "asterisk", "identifier": "src", "country_code": None, "time_zone": "UTC",
            "ambiguous_time": "earliest", "uniqueid": None, "userfield": None}


def columns_for(opts: dict, lines: pl.DataFrame) -> list[str]:
    uniqueid, userfield = opts["uniqueid"], opts["userfield"]
    if uniqueid is None and userfield is None:
        count = common_field_count(lines, ",", '"')
        uniqueid, userfield = count >= 17, count >= 18
    return [*COLUMNS, *(["uniqueid"] if uniqueid else []), *(["userfield"] if userfield else [])]


def skipped_counts(frame: pl.DataFrame, reason: pl.Expr) -> dict[str, int]:
    counts = frame.select(reason.alias("r")).group_by("r").len()
    return {r: int(c) for r, c in counts.iter_rows()}


class AsteriskImporter:
    name = "asterisk"

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch:
        path = Path(path)
        opts = options(profile, DEFAULTS)
        if opts["identifier"] not in ("src", "accountcode"):
            raise ValidationFailed(f"identifier: {opts['identifier']!r} is not src or accountcode",
                                   field="identifier", code="bad_profile")
        kind = "msisdn" if opts["identifier"] == "src" else "account_code"
        spec = Spec(source=opts["source"], file=path.name, identifier_kind=kind, time_zone=opts["time_zone"],
                    ambiguous_time=opts["ambiguous_time"],
                    country_code=str(opts["country_code"]) if opts["country_code"] is not None else None)
        lines = read_lines(path)
        names = columns_for(opts, lines)
        rows, bad = split_delimited(lines, names=names)

        disposition = pl.col("disposition").str.strip_chars().str.to_uppercase()
        known = disposition.is_in([CHARGED, *NOT_CHARGED])
        unknown = rows.filter(~known).select(
            "line", "raw", pl.lit("unknown_value").alias("reason"), pl.lit("disposition").alias("field"),
            pl.format('disposition: "{}" is not ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION',
                      pl.col("disposition")).alias("message"))
        not_charged = rows.filter(known & (disposition != CHARGED))
        answered = rows.filter(disposition == CHARGED)

        staged = answered.select(
            "line", "raw",
            (pl.col("uniqueid") if "uniqueid" in names else pl.lit(None, pl.Utf8)).alias("native_id"),
            pl.lit("voice").alias("service"), pl.col(opts["identifier"]).alias("identifier"),
            pl.col("dst").alias("destination"),
            pl.when(pl.col("answer").str.strip_chars() != "").then(pl.col("answer")).otherwise(pl.col("start"))
            .alias("start"),
            pl.col("billsec").alias("duration"))
        skipped = skipped_counts(not_charged, disposition.replace(NOT_CHARGED))
        return assemble(staged, spec, rejected=[malformed(bad), unknown], skipped=skipped, path=path)
