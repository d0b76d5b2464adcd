"""Reading a file as numbered physical lines and splitting delimited lines into fields, vectorised.

A line with the wrong number of fields, or one the CSV parser refuses, is returned as a bad line with
its number; it never stops the good ones. A record must fit on one physical line (a quoted field
with an embedded newline is reported as malformed).
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl


def read_lines(path: Path) -> pl.DataFrame:
    """(line, raw) for every non-blank physical line; `line` is 1-based. CRLF and a UTF-8 BOM are accepted."""
    text = Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    frame = (
        pl.DataFrame({"raw": [text]})
        .select(pl.col("raw").str.split("\n"))
        .explode("raw")
        .with_row_index("line", offset=1)
        .with_columns(pl.col("line").cast(pl.Int64), pl.col("raw").str.strip_suffix("\r"))
    )
    return frame.filter(pl.col("raw").str.strip_chars() != "")


def field_counts(raw: pl.Expr, delimiter: str, quote_char: str | None) -> pl.Expr:
    """Number of fields on each line, quote-aware; null when quotes are unbalanced."""
    if not quote_char:
        return raw.str.count_matches(re.escape(delimiter), literal=False) + 1
    q = re.escape(quote_char)
    unquoted = raw.str.replace_all(f"{q}(?:[^{q}]|{q}{q})*{q}", "")
    balanced = raw.str.count_matches(q) % 2 == 0
    return pl.when(balanced).then(unquoted.str.count_matches(re.escape(delimiter)) + 1)


def parse_or_isolate(lines: pl.DataFrame, parse: Callable[[pl.DataFrame], pl.DataFrame]
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run the vectorised `parse` on all lines; if it fails, split in halves until the lines it refuses
    are isolated (a few extra parser calls per bad line). Returns (parsed rows, refused lines)."""
    if lines.height == 0:
        return parse(lines), lines.select("line", "raw")
    try:
        parsed = parse(lines)
        if parsed.height == lines.height:
            return parsed, lines.clear().select("line", "raw")
    except (pl.exceptions.PolarsError, ValueError):
        pass
    if lines.height == 1:
        return parse(lines.clear()), lines.select("line", "raw")
    half = lines.height // 2
    good_a, bad_a = parse_or_isolate(lines.slice(0, half), parse)
    good_b, bad_b = parse_or_isolate(lines.slice(half), parse)
    return pl.concat([good_a, good_b], how="vertical"), pl.concat([bad_a, bad_b], how="vertical")


def split_delimited(lines: pl.DataFrame, *, names: list[str], delimiter: str = ",",
                    quote_char: str | None = '"') -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split (line, raw) into the named Utf8 columns (plus line, raw).

    Returns (rows, bad) where bad is (line, raw, message) for lines with the wrong number of fields
    or that the CSV parser refuses."""
    n = len(names)
    counted = lines.with_columns(field_counts(pl.col("raw"), delimiter, quote_char).alias("_n"))
    wrong = counted.filter(pl.col("_n").is_null() | (pl.col("_n") != n))
    fitting = counted.filter(pl.col("_n") == n).drop("_n")

    def parse(chunk: pl.DataFrame) -> pl.DataFrame:
        if chunk.height == 0:
            return pl.DataFrame(schema={c: pl.Utf8 for c in names})
        data = chunk.select(pl.col("raw").str.join("\n")).item().encode("utf-8") + b"\n"
        parsed = pl.read_csv(io.BytesIO(data), has_header=False, infer_schema=False, separator=delimiter,
                             quote_char=quote_char or None, new_columns=names, empty_string_is_null=False,
                             truncate_ragged_lines=False)
        if parsed.width != n:
            raise ValueError("wrong field count")
        return parsed

    parsed, refused = parse_or_isolate(fitting, parse)
    good_lines = fitting.join(refused, on="line", how="anti") if refused.height else fitting
    rows = pl.concat([good_lines.select("line", "raw"), parsed], how="horizontal")
    bad = pl.concat([
        wrong.select("line", "raw", pl.when(pl.col("_n").is_null()).then(pl.lit("unbalanced quotes"))
                     .otherwise(pl.format("expected {} fields, found {}", pl.lit(n), pl.col("_n")))
                     .alias("message")),
        refused.select("line", "raw", pl.lit("the line cannot be parsed as CSV").alias("message")),
    ], how="vertical").sort("line")
    return rows, bad
