"""Time zones (with DST edges), MSISDN normalisation and unit conversion of the importers. No database."""
from datetime import UTC, datetime

import polars as pl
import pytest

from obol.core.errors import ValidationFailed
from obol.subscriptions.identifiers import normalise
from obol.usage.importers import get_importer
from obol.usage.importers.normalize import msisdn


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def read_csv(tmp_path, text, **profile):
    path = tmp_path / "usage.csv"
    path.write_text(text)
    base = {"columns": {"identifier": "a", "start": "t", "duration": "d"}, "service": "voice"}
    return get_importer("csv").read(path, profile={**base, **profile})


BERLIN_LINES = """a,t,d
491528728463,2026-03-29 01:30:00,60
491528728463,2026-03-29 02:30:00,60
491528728463,2026-03-29 03:00:00,60
491528728463,2026-10-25 01:59:59,60
491528728463,2026-10-25 02:30:00,60
491528728463,2026-10-25 03:00:00,60
"""


def test_berlin_local_times_to_utc_with_dst_edges(tmp_path):
    batch = read_csv(tmp_path, BERLIN_LINES, time_zone="Europe/Berlin")
    starts = dict(batch.records.select("line", "start").iter_rows())
    assert starts == {
        2: utc(2026, 3, 29, 0, 30),     # 01:30 CET (UTC+1), before the spring-forward
        4: utc(2026, 3, 29, 1, 0),      # 03:00 CEST (UTC+2), the first minute after it
        5: utc(2026, 10, 24, 23, 59, 59),  # 01:59:59 CEST
        6: utc(2026, 10, 25, 0, 30),    # 02:30 happens twice: the earliest (CEST) by default
        7: utc(2026, 10, 25, 2, 0),     # 03:00 CET
    }
    # 02:30 on 29 March does not exist in Berlin: the line is an error, not a guess
    assert batch.errors.select("line", "reason", "field").rows() == [(3, "bad_time", "start")]
    assert "Europe/Berlin" in batch.errors["message"][0]


def test_ambiguous_fall_back_time_latest_or_refused(tmp_path):
    latest = read_csv(tmp_path, BERLIN_LINES, time_zone="Europe/Berlin", ambiguous_time="latest")
    assert latest.records.filter(pl.col("line") == 6)["start"].item() == utc(2026, 10, 25, 1, 30)
    refused = read_csv(tmp_path, BERLIN_LINES, time_zone="Europe/Berlin", ambiguous_time="error")
    assert refused.errors.select("line", "reason").rows() == [(3, "bad_time"), (6, "bad_time")]


def test_times_with_offset_ignore_the_profile_zone(tmp_path):
    batch = read_csv(tmp_path, "a,t,d\n491528728463,2026-03-29 01:30:00 +0530,60\n",
                     time_zone="Europe/Berlin", time_format="%Y-%m-%d %H:%M:%S %z")
    assert batch.records["start"].to_list() == [utc(2026, 3, 28, 20, 0)]


def test_unknown_time_zone_in_a_profile_is_refused(tmp_path):
    with pytest.raises(ValidationFailed) as err:
        read_csv(tmp_path, BERLIN_LINES, time_zone="Europe/Atlantis")
    assert err.value.code == "unknown_time_zone" and err.value.field == "time_zone"


def test_unknown_profile_option_is_refused(tmp_path):
    with pytest.raises(ValidationFailed, match="timezone") as err:
        read_csv(tmp_path, BERLIN_LINES, timezone="Europe/Berlin")
    assert err.value.code == "bad_profile"


@pytest.mark.parametrize("raw", ["+49 151 2345 6789", "0049 151 23456789", "4915123456789", "+49 (151) 2345-6789",
                                 "004915123456789", " 49151 23456789 "])
def test_msisdn_spellings_normalise_like_the_identifier_rule(raw):
    got = pl.select(msisdn(pl.lit(raw))).item()
    assert got == normalise("msisdn", raw) == "4915123456789"


@pytest.mark.parametrize("raw", ["12345", "+49151abc", "", "0049 1234567890123456", "anonymous"])
def test_invalid_msisdns_are_null_like_the_identifier_rule_refuses_them(raw):
    assert pl.select(msisdn(pl.lit(raw))).item() is None
    with pytest.raises(ValidationFailed):
        normalise("msisdn", raw)


def test_national_numbers_need_a_country_code():
    assert pl.select(msisdn(pl.lit("0151 23456789"), country_code="49")).item() == "4915123456789"
    assert pl.select(msisdn(pl.lit("0151 23456789"))).item() == "015123456789"  # as normalise would keep it


def test_duration_and_volume_units_round_up_to_whole_seconds_and_bytes(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("a,t,s,q\n"
                    "491528728463,2026-03-01 10:00:00,voice,1500\n"   # 1500 ms -> 2 s (a started second)
                    "491528728463,2026-03-01 10:01:00,voice,61000\n"  # 61 s
                    "491528728463,2026-03-01 10:02:00,data,1.5\n"     # 1.5 MB = 1,572,864 B
                    "491528728463,2026-03-01 10:03:00,sms,\n")        # events default to 1
    batch = get_importer("csv").read(path, profile={
        "columns": {"identifier": "a", "start": "t", "service": "s", "duration": "q", "volume": "q"},
        "duration_unit": "ms", "volume_unit": "MB"})
    r = batch.records
    assert r["duration_s"].to_list() == [2, 61, None, None]
    assert r["volume_bytes"].to_list() == [None, None, 1_572_864, None]
    assert r["events"].to_list() == [None, None, None, 1]


def test_minutes_with_decimals_are_exact(tmp_path):
    batch = read_csv(tmp_path, "a,t,d\n491528728463,2026-03-01 10:00:00,2.5\n491528728463,2026-03-01 11:00:00,0.01\n",
                     duration_unit="min")
    assert batch.records["duration_s"].to_list() == [150, 1]  # 0.01 min = 0.6 s -> 1 billable second


def test_headerless_csv_with_column_numbers(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("X1|491528728463|20260301100000|61\nX2|491577827638|20260301100500|7|extra\n")
    batch = get_importer("csv").read(path, profile={
        "header": False, "delimiter": "|", "time_format": "%Y%m%d%H%M%S", "service": "voice",
        "columns": {"id": 1, "identifier": 2, "start": 3, "duration": 4}})
    assert batch.records.select("record_key", "duration_s").rows() == [("csv:X1", 61)]
    assert batch.errors.select("line", "reason").rows() == [(2, "malformed_line")]


def test_a_mapped_column_the_file_does_not_have_is_refused(tmp_path):
    with pytest.raises(ValidationFailed) as err:
        read_csv(tmp_path, "a,time,d\n491528728463,2026-03-01 10:00:00,1\n")
    assert err.value.code == "unknown_column" and err.value.field == "start"
