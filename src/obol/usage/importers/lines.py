"""Reading a file as numbered physical lines and splitting delimited lines into fields, vectorised.

A line with the wrong number of fields, or one the CSV parser refuses, is returned as a bad line with
its number; it never stops the good ones. A record must fit on one physical line (a quoted field
with an embedded newline is reported as malformed).
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl


def read_lines(path: Path) -> pl.DataFrame:
    """(line, raw) for every non-blank physical line; `line` is 1-based. CRLF and a UTF-8 BOM are accepted."""
    return lines_of(Path(path).read_bytes(), 1)


def lines_of(data: bytes, first: int) -> pl.DataFrame:
    """`read_lines` of a piece of a file that starts at physical line `first` (and, unless it is the end of
    the file, ends with a newline): UTF-8 with bad bytes replaced, a BOM dropped at line 1."""
    text = data.decode("utf-8-sig" if first == 1 else "utf-8", errors="replace")
    frame = (
        pl.DataFrame({"raw": [text]})
        .select(pl.col("raw").str.split("\n"))
        .explode("raw")
        .with_row_index("line", offset=first)
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


# The fast path: a file proven well-formed is parsed by Polars in one go -----------------------------

BOM = b"\xef\xbb\xbf"
_BLANK_END = b" \t\r\n\x0b\x0c"


def fast_prerequisites(data: bytes, delimiter: str, quote_char: str | None) -> bool:
    """True when `split_fast` may try `data`: valid UTF-8, a one-byte delimiter that is not the quote
    character, no NUL byte, and CR only as part of CRLF."""
    if len(delimiter.encode()) != 1 or delimiter in "\r\n\x00" or delimiter == quote_char:
        return False
    if quote_char and (len(quote_char.encode()) != 1 or quote_char in "\r\n\x00"):
        return False
    if b"\x00" in data or (b"\r" in data and data.count(b"\r") != data.count(b"\r\n")):
        return False
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def first_line(data: bytes) -> str:
    """The first physical line as `read_lines` gives it."""
    end = data.find(b"\n")
    return (data if end < 0 else data[:end]).decode("utf-8-sig", errors="replace").removesuffix("\r")


def simple_line_pattern(n: int, delimiter: str, quote_char: str) -> str:
    """A line of exactly n fields, each either unquoted without a quote character or quoted as a whole
    (quotes inside doubled): on such a line `field_counts` finds n and the CSV parser the same fields as
    on the line alone."""
    d, q = re.escape(delimiter), re.escape(quote_char)
    field = f"(?:{q}(?:[^{q}]|{q}{q})*{q}|[^{q}{d}]*)"
    return f"^{field}(?:{d}{field}){{{n - 1}}}$"


def split_fast(data: bytes, *, names: list[str], delimiter: str, quote_char: str | None,
               skip: int, first: int = 1) -> pl.DataFrame | None:
    """(line, raw = null, *names) for the physical lines of `data` after its first `skip`, parsed by
    `pl.read_csv` in one go, when that is provably what `split_delimited(lines_of(data, first))` gives:
    `fast_prerequisites` hold (checked by the caller), no blank line except at the end, and every line has
    exactly len(names) fields. `data` is a whole file or a block of whole lines starting at physical line
    `first` (a BOM already dropped). None when any of that fails: the caller takes the careful path.

    Without a quote character in `data` the proof is arithmetic: Polars refuses a line with more fields
    than the first, the rows number the physical lines up to the last non-blank byte, and the delimiters
    there add up to exactly (fields - 1) per line, so no line has fewer either (a blank line has one
    field). With quotes, the lines are read as one column: a line without the quote character must have
    n - 1 delimiters, one with it must match `simple_line_pattern` (no quoted newline, no stray quote,
    n fields)."""
    n = len(names)
    if n < 2:
        return None
    end = len(data)
    while end > 0 and data[end - 1] in _BLANK_END:
        end -= 1
    start = 0
    for _ in range(skip):
        newline = data.find(b"\n", start, end)
        if newline < 0:
            return None
        start = newline + 1
    if end <= start:
        return None
    lines = data.count(b"\n", start, end) + 1
    quoted = bool(quote_char) and quote_char.encode() in data
    try:
        if quoted:
            text = pl.read_csv(data, has_header=False, skip_rows=skip, n_rows=lines, separator="\x00",
                               quote_char=None, infer_schema=False, new_columns=["raw"], empty_string_is_null=False,
                               truncate_ragged_lines=False, raise_if_empty=False)
            if text.height != lines:
                return None
            has_quote = pl.col("raw").str.contains(quote_char, literal=True)
            plain_ok = text.select((has_quote | (pl.col("raw").str.count_matches(delimiter, literal=True) == n - 1))
                                   .all()).item()
            if not plain_ok or not text.filter(has_quote).select(
                    pl.col("raw").str.contains(simple_line_pattern(n, delimiter, quote_char)).all()).item():
                return None
            del text
        elif data.count(delimiter.encode(), start, end) != lines * (n - 1):
            return None
        parsed = pl.read_csv(data, has_header=False, skip_rows=skip, n_rows=lines, infer_schema=False,
                             separator=delimiter, quote_char=quote_char if quoted else None, new_columns=names,
                             empty_string_is_null=False, truncate_ragged_lines=False, raise_if_empty=False)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if parsed.height != lines or parsed.width != n:
        return None
    offset = first + skip
    return parsed.select(pl.int_range(offset, offset + lines, dtype=pl.Int64).alias("line"),
                         pl.lit(None, pl.Utf8).alias("raw"), pl.all())


# Block-wise: the fast path per block of whole lines, the careful path only for the blocks it refuses ----

BLOCK_BYTES = 8 * 1024 * 1024  # ~125k lines of a typical CDR file: a bad line costs its block only


def blocks(path: Path, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """The file as (physical line number of the block's first line, bytes) blocks of about `size` bytes
    (BLOCK_BYTES), each made of whole lines: every block but the last ends with a newline. A BOM is
    kept (at line 1). Line numbers are those of `read_lines`."""
    size = max(size or BLOCK_BYTES, 16)
    number, carry = 1, b""
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(size)
            if not chunk:
                if carry:
                    yield number, carry
                return
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            block, carry = (data[:cut], data[cut:]) if cut < len(data) else (data, b"")
            del data
            yield number, block
            number += block.count(b"\n")


def split_careful(lines: pl.DataFrame, *, names: list[str], delimiter: str,
                  quote_char: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`split_delimited` of the lines of a block the fast path refused (one name to watch in tests)."""
    return split_delimited(lines, names=names, delimiter=delimiter, quote_char=quote_char)
