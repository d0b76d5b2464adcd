"""What every importer produces: normalized usage records and per-line errors, as Polars frames.

An importer reads one file and returns an `ImportBatch`. Nothing here touches the database:
mediation (mapping to subscriptions), rating and suspense storage work on these frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

SERVICES = ("voice", "sms", "mms", "data", "event")
IDENTIFIER_KINDS = ("msisdn", "imsi", "username", "account_code", "external_id")

RECORD_SCHEMA = pl.Schema({
    "source": pl.Utf8,          # importer / source name, e.g. "asterisk" or a profile's "source"
    "file": pl.Utf8,
    "line": pl.Int64,           # 1-based physical line number in the file
    "record_key": pl.Utf8,      # "{source}:{native id}" or "{source}:h:{sha256 of identifying fields}"
    "service": pl.Utf8,         # voice | sms | mms | data | event | "" (format does not say)
    "identifier_kind": pl.Utf8,  # msisdn | imsi | username | account_code | external_id
    "identifier": pl.Utf8,      # normalized (MSISDN: E.164 digits)
    "destination": pl.Utf8,     # digits, "" if none
    "start": pl.Datetime("us", "UTC"),
    "duration_s": pl.Int64,     # billable seconds (voice), else null
    "volume_bytes": pl.Int64,   # data, else null
    "events": pl.Int64,         # sms / mms / event, else null
    "raw": pl.Utf8,             # the original line
})

ERROR_REASONS = (
    "malformed_line",      # wrong number of fields, broken quoting, not a JSON object
    "missing_field",       # a required field is empty
    "bad_time",            # not a time in the expected format, or a local time skipped/doubled by DST
    "bad_number",          # identifier or destination is not a valid number
    "bad_quantity",        # duration / volume / events is not a number
    "negative_quantity",   # duration / volume / events below zero
    "unknown_time_zone",   # a record's time zone is not an IANA zone
    "unknown_value",       # a coded field has a value the format does not define (service, disposition)
)

ERROR_SCHEMA = pl.Schema({
    "file": pl.Utf8,
    "line": pl.Int64,
    "reason": pl.Utf8,    # one of ERROR_REASONS
    "field": pl.Utf8,     # the record field at fault ("" for malformed_line)
    "message": pl.Utf8,   # names the field and the value
    "raw": pl.Utf8,
})


def empty_records() -> pl.DataFrame:
    return pl.DataFrame(schema=RECORD_SCHEMA)


def empty_errors() -> pl.DataFrame:
    return pl.DataFrame(schema=ERROR_SCHEMA)


@dataclass
class ImportBatch:
    """One file's worth: `records` ready for mediation, `errors` for suspense (one row per bad line,
    with its line number and reason), `skipped` counts lines read on purpose but not charged
    (e.g. {"unanswered": 3})."""

    records: pl.DataFrame = field(default_factory=empty_records)
    errors: pl.DataFrame = field(default_factory=empty_errors)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def lines_accounted(self) -> int:
        """Records + errors + skipped: every non-blank data line of the file lands in exactly one."""
        return self.records.height + self.errors.height + sum(self.skipped.values())


class Importer(Protocol):
    name: str

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch: ...
