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
    "raw": pl.Utf8,             # the original line; null in an importer's records (ImportBatch.fill_raw)
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
    (e.g. {"unanswered": 3}).

    Errors carry their original line in `raw`; records do not (null: a million copies of the file's
    text are not needed to rate it). `fill_raw` reads the lines of the records that need it (those
    suspended) from the file again."""

    records: pl.DataFrame = field(default_factory=empty_records)
    errors: pl.DataFrame = field(default_factory=empty_errors)
    skipped: dict[str, int] = field(default_factory=dict)
    path: Path | None = None    # the file read, for fill_raw

    def fill_raw(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (with `line` and `raw` columns, e.g. suspense rows) with each null `raw` set to the
        original physical line `line` of the file: decoded as UTF-8 (a leading BOM dropped, bad bytes
        replaced), without its line end (LF or CRLF). Reads the file once, in blocks, keeping only the
        lines asked for."""
        if self.path is None or frame.height == 0 or frame["raw"].null_count() == 0:
            return frame
        wanted = frame.filter(pl.col("raw").is_null())["line"].drop_nulls().unique().sort().to_list()
        found = read_physical_lines(self.path, wanted)
        lookup = pl.DataFrame({"line": list(found), "_raw": list(found.values())},
                              schema={"line": frame.schema["line"], "_raw": pl.Utf8})
        return (frame.join(lookup, on="line", how="left", maintain_order="left")
                .with_columns(pl.coalesce("raw", "_raw").alias("raw")).drop("_raw"))

    @property
    def lines_accounted(self) -> int:
        """Records + errors + skipped: every non-blank data line of the file lands in exactly one."""
        return self.records.height + self.errors.height + sum(self.skipped.values())


BLOCK = 16 * 1024 * 1024


def read_physical_lines(path: Path, wanted: list[int]) -> dict[int, str]:
    """{line: text} for the 1-based physical line numbers `wanted` (sorted), as `lines.read_lines`
    gives them (UTF-8 with a BOM dropped and bad bytes replaced, LF-separated, one trailing CR
    removed). Blocks without a wanted line are only counted, not split."""
    out: dict[int, str] = {}
    if not wanted:
        return out
    pending = iter(wanted)
    target = next(pending)
    number = 1          # the line number of the first line that starts in `carry + block`
    carry = b""
    with open(path, "rb") as handle:
        while target is not None:
            block = handle.read(BLOCK)
            last = not block
            chunk = carry + block if carry else block
            newlines = chunk.count(b"\n")
            if target >= number + newlines and not last:  # the wanted line does not end in this chunk
                cut = chunk.rfind(b"\n") + 1
                number += newlines
                carry = chunk[cut:]
                continue
            parts = chunk.split(b"\n")
            complete = parts if last else parts[:-1]
            while target is not None and target - number < len(complete):
                data = complete[target - number]
                text = data.decode("utf-8-sig" if target == 1 else "utf-8", errors="replace")
                out[target] = text.removesuffix("\r")
                target = next(pending, None)
            if last:
                break
            number += len(complete)
            carry = parts[-1]
    return out

class Importer(Protocol):
    name: str

    def read(self, path: Path, *, profile: dict | None = None) -> ImportBatch: ...
