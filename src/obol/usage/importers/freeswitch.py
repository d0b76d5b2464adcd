"""FreeSWITCH mod_cdr_csv, 'example' template (the default template of the vanilla cdr_csv.conf.xml).

Columns (no header, every field quoted): caller_id_name, caller_id_number, destination_number,
context, start_stamp, answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid,
accountcode, read_codec, write_codec.

Charged: calls with billsec > 0, rated on billsec, started at answer_stamp (start_stamp if empty).
billsec counts from answer, so billsec > 0 means the call was answered; hangup_cause is not used,
because FreeSWITCH writes NORMAL_CLEARING for calls that were never answered as well (billsec 0,
empty answer_stamp) and answered calls can end with other causes. billsec = 0 counts in
skipped["unanswered"]. Times are "%Y-%m-%d %H:%M:%S" in the switch's zone (`time_zone`, default UTC).
Key: "{source}:{uuid}" (a UUID is unique across switches).
Profile options: source (default "freeswitch"), identifier ("caller_id_number" as MSISDN, or
"accountcode"), country_code, time_zone, ambiguous_time.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from obol.core.errors import ValidationFailed
from obol.usage.importers.assemble import Spec, assemble, malformed
from obol.usage.importers.base import ImportBatch
from obol.usage.importers.lines import read_lines, split_delimited
from obol.usage.importers.normalize import quantity_micro
from obol.usage.importers.profiles import options

COLUMNS = ("caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
           "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
           "accountcode", "read_codec", "write_codec")

DEFAULTS = {"source": "freeswitch", "identifier": "caller_id_number", "country_code": None, "time_zone": "UTC",
            "ambiguous_time": "earliest"}


class FreeSwitchImporter:
    name = "freeswitch"

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch:
        path = Path(path)
        opts = options(profile, DEFAULTS)
        if opts["identifier"] not in ("caller_id_number", "accountcode"):
            raise ValidationFailed(f"identifier: {opts['identifier']!r} is not caller_id_number or accountcode",
                                   field="identifier", code="bad_profile")
        kind = "msisdn" if opts["identifier"] == "caller_id_number" else "account_code"
        spec = Spec(source=opts["source"], file=path.name, identifier_kind=kind, time_zone=opts["time_zone"],
                    ambiguous_time=opts["ambiguous_time"],
                    country_code=str(opts["country_code"]) if opts["country_code"] is not None else None)
        rows, bad = split_delimited(read_lines(path), names=list(COLUMNS))
        unanswered = quantity_micro(pl.col("billsec")) == 0
        charged = rows.filter(~unanswered.fill_null(False))
        staged = charged.select(
            "line", "raw", pl.col("uuid").alias("native_id"), pl.lit("voice").alias("service"),
            pl.col(opts["identifier"]).alias("identifier"), pl.col("destination_number").alias("destination"),
            pl.when(pl.col("answer_stamp").str.strip_chars() != "").then(pl.col("answer_stamp"))
            .otherwise(pl.col("start_stamp")).alias("start"),
            pl.col("billsec").alias("duration"))
        skipped = {"unanswered": rows.height - charged.height} if rows.height > charged.height else {}
        return assemble(staged, spec, rejected=[malformed(bad)], skipped=skipped, path=path)
