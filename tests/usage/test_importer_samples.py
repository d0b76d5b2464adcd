"""Each sample in samples/usage imports with totals a clerk can check against the file; the broken
variants report every bad line with its number and reason and keep every good line. No database."""
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from obol.usage.importers import ERROR_SCHEMA, RECORD_SCHEMA, detect, get_importer, load_profile

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "usage"
SWITCH = {"time_zone": "Europe/Berlin", "country_code": "49"}
DEMO_MSISDNS = ["491510872248", "491518883684", "491528728463", "491547308985", "491560992979",
                "491577827638", "491584752529", "491588461803"]  # all in samples/demo/customers.csv


def read(fmt, name, profile=None):
    return get_importer(fmt).read(SAMPLES / name, profile=profile)


def edr_profile():
    return load_profile(SAMPLES / "operator-edr.profile.yaml")


def errors_by_line(batch):
    return {line: (reason, field) for line, reason, field in batch.errors.select("line", "reason", "field").iter_rows()}


# --- Asterisk Master.csv: 30 lines, 24 ANSWERED, 3 NO ANSWER, 2 BUSY, 1 FAILED -------------------------

ASTERISK_BILLSEC = [61, 127, 10, 604, 50, 7, 248, 42, 71, 137, 20, 614, 17, 258, 81, 51, 147, 30, 624, 70,
                    27, 117, 268, 62]  # column 14 (billsec) of the ANSWERED lines, top to bottom


def test_asterisk_sample_charges_answered_calls_on_billsec():
    batch = read("asterisk", "asterisk-Master.csv", SWITCH)
    records = batch.records
    assert records.schema == RECORD_SCHEMA
    assert records["duration_s"].to_list() == ASTERISK_BILLSEC
    assert records.height == 24 and records["duration_s"].sum() == 3743
    assert batch.skipped == {"no_answer": 3, "busy": 2, "failed": 1}
    assert batch.errors.height == 0
    assert set(records["service"]) == {"voice"}
    assert sorted(set(records["identifier"])) == DEMO_MSISDNS
    first = records.row(0, named=True)
    # line 1: src 491528728463, dst +4915112345678, answered 2026-03-02 08:00:03 Berlin (CET, UTC+1)
    assert first["line"] == 1 and first["identifier"] == "491528728463"
    assert first["destination"] == "4915112345678"
    assert first["start"] == datetime(2026, 3, 2, 7, 0, 3, tzinfo=UTC)
    assert first["record_key"] == "asterisk:1772438400.1"
    assert first["volume_bytes"] is None and first["events"] is None
    # line 3: src 00491510872248 and dst 442079460000 (London) normalised
    third = records.filter(pl.col("line") == 3).row(0, named=True)
    assert (third["identifier"], third["destination"]) == ("491510872248", "442079460000")
    # national src 01560992979 becomes 491560992979 with country_code 49 (records carry no raw line:
    # fill_raw reads it from the file)
    assert records["raw"].null_count() == records.height
    with_raw = batch.fill_raw(records)
    assert with_raw.drop("raw").equals(records.drop("raw"))
    assert with_raw.filter(pl.col("raw").str.contains('"01560992979"'))["identifier"].unique().to_list() == [
        "491560992979"]


def test_asterisk_broken_sample_reports_each_bad_line_and_keeps_the_good_ones():
    batch = read("asterisk", "asterisk-Master-broken.csv", SWITCH)
    assert errors_by_line(batch) == {
        3: ("malformed_line", ""),          # 10 fields instead of 18
        8: ("bad_time", "start"),           # 2026-02-30 25:00:07
        12: ("negative_quantity", "duration"),  # billsec -12
        17: ("unknown_value", "disposition"),   # WEIRD
        21: ("malformed_line", ""),         # unbalanced quotes
        25: ("bad_number", "identifier"),   # src "anonymous"
    }
    assert batch.errors.schema == ERROR_SCHEMA
    assert batch.records["duration_s"].to_list() == ASTERISK_BILLSEC
    assert batch.skipped == {"no_answer": 3, "busy": 2, "failed": 1}
    messages = dict(batch.errors.select("line", "message").iter_rows())
    assert messages[12] == 'duration: "-12" is negative'
    assert "WEIRD" in messages[17] and "2026-02-30 25:00:07" in messages[8]
    raw = dict(batch.errors.select("line", "raw").iter_rows())
    lines = (SAMPLES / "asterisk-Master-broken.csv").read_text().splitlines()
    assert all(raw[n] == lines[n - 1] for n in raw)  # the original line is kept for suspense
    # every line lands in exactly one place: 30 good lines + 6 bad = 36 lines in the file
    assert batch.lines_accounted == len(lines) == 36


# --- FreeSWITCH 'example' template: 25 lines, 21 with billsec > 0 -------------------------------------

FREESWITCH_BILLSEC = [12, 63, 304, 101, 16, 56, 26, 318, 115, 30, 1824, 70, 91, 332, 129, 44, 1838, 84, 54, 105, 143]


def test_freeswitch_sample_charges_calls_with_billsec():
    batch = read("freeswitch", "freeswitch-Master.csv", SWITCH)
    records = batch.records
    assert records["duration_s"].to_list() == FREESWITCH_BILLSEC
    assert records.height == 21 and records["duration_s"].sum() == 5755
    assert batch.skipped == {"unanswered": 4}
    assert batch.errors.height == 0
    assert sorted(set(records["identifier"])) == DEMO_MSISDNS
    first = records.row(0, named=True)
    assert first["record_key"] == "freeswitch:738d243a-6e58-45ca-89c7-b59b995253fd"
    assert first["identifier"] == "491560992979" and first["destination"] == "442079460000"
    assert first["start"] == datetime(2026, 3, 3, 7, 0, 2, tzinfo=UTC)  # answer_stamp 08:00:02 CET


def test_freeswitch_broken_sample():
    batch = read("freeswitch", "freeswitch-Master-broken.csv", SWITCH)
    assert errors_by_line(batch) == {
        2: ("malformed_line", ""),               # 14 fields
        6: ("bad_time", "start"),                # answer_stamp 03/03/2026 11:11
        10: ("negative_quantity", "duration"),   # billsec -63
        14: ("bad_number", "destination"),       # *97voicemail
        18: ("bad_quantity", "duration"),        # billsec "sixty"
    }
    assert batch.records["duration_s"].to_list() == FREESWITCH_BILLSEC
    assert batch.skipped == {"unanswered": 4}
    assert batch.lines_accounted == 30


# --- configurable CSV with a profile: 40 EDRs (18 MOC, 12 SMS-MO, 10 GPRS) ----------------------------

EDR_VOICE_S = [60, 121, 65, 309, 70, 131, 314, 75, 22, 141, 83, 85, 329, 88, 334, 95, 42, 98]
EDR_SMS = [3, 1, 1, 2, 2, 1, 2, 3, 1, 2, 2, 3]
EDR_DATA_KB = [516, 2057, 524, 114, 10259, 532, 10263, 130, 544, 548]  # VOLUME_KB column


def test_profile_csv_sample():
    batch = read("csv", "operator-edr.csv", edr_profile())
    r = batch.records
    assert batch.errors.height == 0 and batch.skipped == {}
    assert r.filter(service="voice")["duration_s"].to_list() == EDR_VOICE_S
    assert sum(EDR_VOICE_S) == 2462 == r["duration_s"].sum()
    assert r.filter(service="sms")["events"].to_list() == EDR_SMS
    assert r["events"].sum() == 23
    assert r.filter(service="data")["volume_bytes"].to_list() == [kb * 1024 for kb in EDR_DATA_KB]
    assert r["volume_bytes"].sum() == 25487 * 1024 == 26_098_688
    assert r.height == 40 and sorted(set(r["identifier"])) == DEMO_MSISDNS
    first = r.row(0, named=True)
    assert first["record_key"] == "operator-edr:EDR20260304000"
    assert first["start"] == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)  # 04.03.2026 08:00:00 Berlin
    assert first["destination"] == "4917623456789" and first["line"] == 2  # line 1 is the header
    assert r.filter(service="data")["destination"].unique().to_list() == [""]


def test_profile_csv_broken_sample():
    batch = read("csv", "operator-edr-broken.csv", edr_profile())
    assert errors_by_line(batch) == {
        3: ("malformed_line", ""),              # 6 fields instead of 8
        7: ("bad_time", "start"),               # 31.02.2026
        11: ("negative_quantity", "duration"),  # -30
        15: ("unknown_value", "service"),       # FAX is not in service_values
        19: ("missing_field", "identifier"),    # empty A_NUMBER
        23: ("bad_time", "start"),              # 29.03.2026 02:30 does not exist in Berlin
    }
    assert batch.records.height == 40 and batch.records["duration_s"].sum() == 2462


# --- JSON Lines: 30 events (12 voice, 8 sms, 2 mms, 6 data, 2 event) -----------------------------------

def test_jsonl_sample():
    batch = read("jsonl", "events.jsonl", {"country_code": "49"})
    r = batch.records
    assert batch.errors.height == 0
    counts = dict(r.group_by("service").len().iter_rows())
    assert counts == {"voice": 12, "sms": 8, "mms": 2, "data": 6, "event": 2}
    assert r.filter(service="voice")["duration_s"].to_list() == [61, 31, 65, 35, 606, 22, 39, 47, 618, 51, 38, 85]
    assert r["duration_s"].sum() == 1698
    assert r.filter(service="data")["volume_bytes"].to_list() == [734006, 1048592, 1048596, 1022, 52428825, 734030]
    assert r["volume_bytes"].sum() == 55_995_071
    assert r.filter(service="sms")["events"].sum() == 12 and r.filter(service="mms")["events"].sum() == 3
    assert r.filter(service="event")["events"].to_list() == [3, 3]
    starts = r.head(3)["start"].to_list()  # "…T08:00:00Z", "…T11:17:00+01:00", "14:34:00" in Europe/Berlin
    assert starts == [datetime(2026, 3, 5, 8, 0, tzinfo=UTC), datetime(2026, 3, 5, 10, 17, tzinfo=UTC),
                      datetime(2026, 3, 5, 13, 34, tzinfo=UTC)]
    assert r["record_key"].to_list()[:2] == ["jsonl:evt-0001", "jsonl:evt-0002"]
    assert sorted(set(r["identifier"])) == DEMO_MSISDNS


def test_jsonl_broken_sample():
    batch = read("jsonl", "events-broken.jsonl", {"country_code": "49"})
    assert errors_by_line(batch) == {
        2: ("malformed_line", ""),              # truncated object
        5: ("bad_time", "start"),               # T25:00:00Z
        9: ("negative_quantity", "duration"),   # duration_s -60
        13: ("unknown_value", "service"),       # fax
        17: ("unknown_time_zone", "time_zone"),  # Mars/Olympus
        21: ("bad_number", "identifier"),       # 12345 is too short for an MSISDN
    }
    assert batch.records.height == 30 and batch.records["volume_bytes"].sum() == 55_995_071


def test_invalid_json_inside_braces_is_isolated_to_its_line(tmp_path):
    path = tmp_path / "x.jsonl"
    good = '{"service": "sms", "identifier": "491528728463", "start": "2026-03-01T10:00:00Z"}'
    path.write_text("\n".join([good, good.replace("10:00", "10:01"), '{"service": , }',
                               good.replace("10:00", "10:02")]) + "\n")
    batch = get_importer("jsonl").read(path)
    assert errors_by_line(batch) == {3: ("malformed_line", "")}
    assert batch.records["line"].to_list() == [1, 2, 4]


# --- keys, detection, empty files ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt,name,profile", [
    ("asterisk", "asterisk-Master.csv", SWITCH), ("freeswitch", "freeswitch-Master.csv", SWITCH),
    ("csv", "operator-edr.csv", None), ("jsonl", "events.jsonl", {"country_code": "49"})])
def test_keys_are_stable_across_reads_and_unique(fmt, name, profile):
    profile = edr_profile() if fmt == "csv" else profile
    first, second = read(fmt, name, profile), read(fmt, name, profile)
    assert first.records["record_key"].to_list() == second.records["record_key"].to_list()
    assert first.records["record_key"].n_unique() == first.records.height


def test_hash_keys_without_native_id_are_stable_across_files_and_spellings(tmp_path):
    profile = {"columns": {"identifier": "a", "start": "t", "duration": "d", "destination": "b"}, "service": "voice"}
    (tmp_path / "one.csv").write_text("a,b,t,d\n+49 1528 728463,004420794600,2026-03-01 10:00:00,61\n"
                                      "491528728463,4420794600,2026-03-01 10:05:00,61\n")
    (tmp_path / "two.csv").write_text("t,a,b,d\n2026-03-01 10:00:00,00491528728463,+4420794600,61\n")
    one = get_importer("csv").read(tmp_path / "one.csv", profile=profile).records
    two = get_importer("csv").read(tmp_path / "two.csv", profile=profile).records
    key = one["record_key"][0]
    assert key.startswith("csv:h:") and len(key) == len("csv:h:") + 32
    assert two["record_key"][0] == key            # same call, another file, other spelling: same key
    assert one["record_key"][1] != key            # five minutes later: another call
    # sha256 of "msisdn␟491528728463␟4420794600␟2026-03-01T10:00:00.000000␟voice␟61␟␟" (␟ = \x1f),
    # pinned as a literal so that no library upgrade can change the keys of records already charged
    assert key == "csv:h:7963fccb1d425c5e28e749f800c4c5cb"


def test_detect_by_first_line():
    assert detect(SAMPLES / "asterisk-Master.csv") == "asterisk"
    assert detect(SAMPLES / "freeswitch-Master.csv") == "freeswitch"
    assert detect(SAMPLES / "events.jsonl") == "jsonl"
    assert detect(SAMPLES / "operator-edr.csv") is None  # a profile CSV needs its profile


@pytest.mark.parametrize("fmt,content,profile", [
    ("asterisk", "", None), ("freeswitch", "\n\n", None), ("jsonl", "", None),
    ("csv", "", {"columns": {"identifier": "a", "start": "t"}}),
    ("csv", "a,t,d\n", {"columns": {"identifier": "a", "start": "t"}}),
])
def test_empty_and_header_only_files(tmp_path, fmt, content, profile):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    batch = get_importer(fmt).read(path, profile=profile)
    assert batch.records.height == 0 and batch.errors.height == 0 and batch.skipped == {}
    assert batch.records.schema == RECORD_SCHEMA and batch.errors.schema == ERROR_SCHEMA
