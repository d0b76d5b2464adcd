"""The CSV importer's fast path (one read_csv of a file proven well-formed) and `ImportBatch.fill_raw`:
what a clerk sees — records, line numbers, error reasons and messages, the original line of a bad
one — is the same whether the file is clean or has a bad line anywhere. No database."""
from pathlib import Path

import polars as pl
import pytest

from obol.usage.importers import base, get_importer
from obol.usage.importers.lines import read_lines

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "usage"
PROFILE = {"columns": {"id": "id", "identifier": "msisdn", "service": "service", "destination": "dest",
                       "start": "start", "duration": "dur", "volume": "vol"}}
HEADER = "id,msisdn,service,dest,start,dur,vol"


def good_line(i: int) -> str:
    return f'{i},4915100{i:05d},voice,"{4930 + i}",2026-03-01 10:{i % 60:02d}:00,{i % 300 + 1},'


def write(tmp_path, lines: list[str], *, ending="\n", bom=False, name="usage.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (ending.join(lines) + ending).encode())
    return path


def read(path: Path, profile=None):
    return get_importer("csv").read(path, profile=profile or PROFILE)


def errors(batch) -> list[tuple]:
    return batch.errors.select("line", "reason", "field", "message").rows()


@pytest.mark.parametrize("ending,bom", [("\n", False), ("\r\n", True)])
def test_clean_quoted_file_keeps_line_numbers_and_values(tmp_path, ending, bom):
    lines = [HEADER, *(good_line(i) for i in range(1, 2001))]
    lines[7] = '7,"+49 151 00000 07",voice,"4937",2026-03-01 10:07:00,"8",""'  # quotes, spaces: normalised
    batch = read(write(tmp_path, lines, ending=ending, bom=bom))
    assert batch.errors.height == 0
    records = batch.records
    assert records["line"].to_list() == list(range(2, 2002))  # line 1 is the header
    assert records.filter(pl.col("line") == 8).select("record_key", "identifier", "destination", "duration_s"
                                                      ).row(0) == ("csv:7", "491510000007", "4937", 8)
    assert records["raw"].null_count() == records.height  # records carry no copy of their line
    assert batch.fill_raw(records.filter(pl.col("line") == 8))["raw"].to_list() == [lines[7]]


BAD = {
    "ragged long": ('9,491510000009,voice,"4939",2026-03-01 10:09:00,10,,extra', "expected 7 fields, found 8"),
    "ragged short": ('9,491510000009,voice,"4939",2026-03-01 10:09:00', "expected 7 fields, found 5"),
    "unbalanced quote": ('9,491510000009,voice,"4939,2026-03-01 10:09:00,10,', "unbalanced quotes"),
    "stray quote": ('9,4915100"00009,voice,"4939",2026-03-01 10:09:00,10,', "unbalanced quotes"),
}


@pytest.mark.parametrize("where", [2, 1500, 2999])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_line_anywhere_is_reported_on_its_line_and_the_rest_kept(tmp_path, kind, where):
    lines = [HEADER, *(good_line(i) for i in range(1, 3001))]
    bad, message = BAD[kind]
    lines[where - 1] = bad
    batch = read(write(tmp_path, lines))
    assert errors(batch) == [(where, "malformed_line", "", f"line {where}: {message}")]
    assert batch.errors["raw"].to_list() == [bad]  # the original line, for suspense
    assert batch.records.height == 2999
    assert where not in batch.records["line"].to_list()
    assert batch.lines_accounted == 3000


def test_a_long_and_a_short_line_do_not_pass_for_two_good_ones(tmp_path):
    lines = [HEADER, *(good_line(i) for i in range(1, 101))]
    lines[10] = lines[10] + ",x"            # 8 fields
    lines[50] = lines[50].rsplit(",", 1)[0]  # 6 fields: the delimiters add up as if both were good
    batch = read(write(tmp_path, lines))
    assert [(line, reason) for line, reason, _, _ in errors(batch)] == [(11, "malformed_line"), (51, "malformed_line")]
    assert batch.records.height == 98


def test_blank_lines_and_a_quoted_newline_keep_the_physical_line_numbers(tmp_path):
    lines = [HEADER, good_line(1), "", good_line(3), '4,491510000004,voice,"49', '34",2026-03-01 10:04:00,5,',
             "   ", good_line(8), "", ""]
    batch = read(write(tmp_path, lines))
    assert batch.records["line"].to_list() == [2, 4, 8]
    assert [(line, reason) for line, reason, _, _ in errors(batch)] == [(5, "malformed_line"), (6, "malformed_line")]


def test_value_errors_on_the_fast_path_get_their_original_line(tmp_path):
    lines = [HEADER, *(good_line(i) for i in range(1, 51))]
    lines[20] = '20,anonymous,voice,"4950",2026-03-01 10:20:00,21,'
    lines[30] = '30,491510000030,voice,"4960",2026-02-30 10:30:00,31,'
    batch = read(write(tmp_path, lines, ending="\r\n", bom=True))
    assert errors(batch) == [
        (21, "bad_number", "identifier", 'identifier: "anonymous" is not a valid msisdn'),
        (31, "bad_time", "start", 'start: "2026-02-30 10:30:00" is not a time in format "%Y-%m-%d %H:%M:%S"'),
    ]
    assert batch.errors["raw"].to_list() == [lines[20], lines[30]]  # without the CR


def test_fill_raw_reads_only_the_asked_lines_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "BLOCK", 7)  # lines straddle many block boundaries
    text = "\ufeffh1,h2\r\nfirst,line\r\n\r\nnon-utf8 \xff here\nlast line without end".encode("utf-8")
    text = text.replace("\xff".encode(), b"\xff")
    path = tmp_path / "x.csv"
    path.write_bytes(text)
    batch = base.ImportBatch(path=path)
    frame = pl.DataFrame({"line": [5, 1, 2, 4, 3, 9], "raw": [None, None, "kept", None, None, None]},
                         schema={"line": pl.Int64, "raw": pl.Utf8})
    filled = batch.fill_raw(frame)
    assert filled["line"].to_list() == [5, 1, 2, 4, 3, 9]  # order kept
    assert filled["raw"].to_list() == ["last line without end", "h1,h2", "kept", "non-utf8 \ufffd here", "", None]
    expected = dict(read_lines(path).iter_rows())  # the same text the careful reader keeps
    assert all(expected[line] == raw for line, raw in filled.rows() if line in expected and line != 2)


@pytest.mark.parametrize("fmt,name,profile", [
    ("asterisk", "asterisk-Master-broken.csv", {"time_zone": "Europe/Berlin"}),
    ("freeswitch", "freeswitch-Master-broken.csv", {"time_zone": "Europe/Berlin"}),
    ("jsonl", "events-broken.jsonl", {"country_code": "49"}),
    ("csv", "operator-edr-broken.csv", "edr")])
def test_every_importer_returns_records_without_raw_and_fill_raw_restores_it(fmt, name, profile):
    if profile == "edr":
        from obol.usage.importers import load_profile
        profile = load_profile(SAMPLES / "operator-edr.profile.yaml")
    batch = get_importer(fmt).read(SAMPLES / name, profile=profile)
    lines = (SAMPLES / name).read_text().splitlines()
    assert batch.records["raw"].null_count() == batch.records.height > 0
    assert all(raw == lines[line - 1] for line, raw in batch.errors.select("line", "raw").rows())
    filled = batch.fill_raw(batch.records)
    assert all(raw == lines[line - 1] for line, raw in filled.select("line", "raw").rows())


def careful_reference(path: Path, profile=None, monkeypatch=None):
    """The whole-file careful path (every line split on its own), as the reference."""
    from obol.usage.importers import csv_profile
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_profile.CsvProfileImporter, "_first_line_columns", lambda *args: (None, None))
        return read(path, profile)


def spy_careful(monkeypatch) -> list[int]:
    """Record the line numbers the careful (line-by-line) split sees."""
    from obol.usage.importers import csv_profile
    seen: list[int] = []
    real = csv_profile.split_careful

    def spy(lines, **kwargs):
        seen.extend(lines["line"].to_list())
        return real(lines, **kwargs)

    monkeypatch.setattr(csv_profile, "split_careful", spy)
    return seen


def assert_same(batch, reference):
    assert batch.records.equals(reference.records)
    assert batch.errors.equals(reference.errors)
    assert batch.skipped == reference.skipped


def test_a_clean_file_is_read_without_splitting_it_line_by_line(tmp_path, monkeypatch):
    from obol.usage.importers import csv_profile

    def careful(path):
        raise AssertionError("the careful path was taken for a well-formed file")

    lines = [HEADER, *(good_line(i) for i in range(1, 101))]
    monkeypatch.setattr(csv_profile, "read_lines", careful)
    seen = spy_careful(monkeypatch)
    assert read(write(tmp_path, lines, ending="\r\n", bom=True)).records.height == 100
    assert seen == []
    lines[40] = lines[40] + ",x"  # a ragged line: only its block (here the whole file) line by line
    assert read(write(tmp_path, lines)).records.height == 99
    assert seen == list(range(2, 102))


def test_only_the_blocks_with_a_bad_line_are_split_line_by_line(tmp_path, monkeypatch):
    from obol.usage.importers import lines as lines_module
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", 4096)  # ~70 lines a block
    lines = [HEADER, *(good_line(i) for i in range(1, 10001))]
    lines[1234] = lines[1234] + ",x"                                       # 8 fields
    lines[5000] = '5000,491510005000,voice,"4939,2026-03-01 10:09:00,10,'  # unbalanced quote
    lines[9876] = lines[9876].rsplit(",", 1)[0]                             # 6 fields
    lines[7000] = '7000,anonymous,voice,"4950",2026-03-01 10:20:00,21,'     # a value error: fast path
    path = write(tmp_path, lines, ending="\r\n", bom=True)
    reference = careful_reference(path)
    seen = spy_careful(monkeypatch)
    batch = read(path)
    assert_same(batch, reference)
    assert errors(batch) == [
        (1235, "malformed_line", "", "line 1235: expected 7 fields, found 8"),
        (5001, "malformed_line", "", "line 5001: unbalanced quotes"),
        (7001, "bad_number", "identifier", 'identifier: "anonymous" is not a valid msisdn'),
        (9877, "malformed_line", "", "line 9877: expected 7 fields, found 6"),
    ]
    assert batch.errors["raw"].to_list() == [lines[1234], lines[5000], lines[7000], lines[9876]]
    assert batch.records.height == 9996 and batch.lines_accounted == 10000
    # the careful split saw exactly the lines of the three blocks holding a malformed line
    spans = [(first, first + data.count(b"\n")) for first, data in lines_module.blocks(path)]
    bad_blocks = [(a, b) for a, b in spans if any(a <= line < b for line in (1235, 5001, 9877))]
    assert len(spans) > 100 and len(bad_blocks) == 3
    assert seen == [line for a, b in bad_blocks for line in range(max(a, 2), b)]


@pytest.mark.parametrize("case", ["crlf-bom", "blank-lines", "bad-utf8", "nul", "no-final-newline",
                                  "trailing-blanks", "lone-cr", "header-only"])
def test_block_edges_give_what_the_careful_path_gives(tmp_path, monkeypatch, case):
    from obol.usage.importers import lines as lines_module
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", 300)
    lines = [HEADER, *(good_line(i) for i in range(1, 200))]
    ending, bom, tail = "\n", False, "\n"
    if case == "crlf-bom":
        ending, bom = "\r\n", True
    elif case == "blank-lines":
        lines[30:30] = ["", "   ", ""]
    elif case == "bad-utf8":
        lines[60] = lines[60].replace("voice", "vo\udcffice")
    elif case == "nul":
        lines[60] = lines[60].replace("voice", "vo\x00ice")
    elif case == "no-final-newline":
        tail = ""
    elif case == "trailing-blanks":
        tail = "\n" + "\n  \n" * 200
    elif case == "lone-cr":
        lines[90] = lines[90].replace("voice", "vo\rice")
    elif case == "header-only":
        lines = [HEADER]
    path = tmp_path / "edge.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (ending.join(lines) + tail).encode("utf-8", "surrogateescape"))
    reference = careful_reference(path)
    batch = read(path)
    assert_same(batch, reference)
    assert batch.lines_accounted == len(lines) - 1 - (3 if case == "blank-lines" else 0)


def test_headerless_blocks_with_a_bad_line(tmp_path, monkeypatch):
    from obol.usage.importers import lines as lines_module
    monkeypatch.setattr(lines_module, "BLOCK_BYTES", 1000)
    profile = {"header": False, "columns": {"identifier": 2, "start": 5, "duration": 6}, "service": "voice"}
    lines = [good_line(i) for i in range(1, 400)]
    lines[200] = "1,491510000001,voice"
    path = write(tmp_path, lines)
    reference = careful_reference(path, profile)
    seen = spy_careful(monkeypatch)
    batch = read(path, profile)
    assert_same(batch, reference)
    assert errors(batch) == [(201, "malformed_line", "", "line 201: expected 7 fields, found 3")]
    assert 201 in seen and len(seen) < 50


def test_blank_lines_before_the_header(tmp_path):
    batch = read(write(tmp_path, ["", "  ", HEADER, good_line(1), good_line(2)]))
    assert batch.records["line"].to_list() == [4, 5] and batch.errors.height == 0


def test_headerless_file_takes_the_most_common_field_count(tmp_path):
    profile = {"header": False, "columns": {"identifier": 2, "start": 5, "duration": 6}, "service": "voice"}
    lines = ["1,491510000001,voice", *(good_line(i) for i in range(2, 6))]
    batch = read(write(tmp_path, lines), profile)
    assert batch.records["line"].to_list() == [2, 3, 4, 5]
    assert errors(batch) == [(1, "malformed_line", "", "line 1: expected 7 fields, found 3")]
