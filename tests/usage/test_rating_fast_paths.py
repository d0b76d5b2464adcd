"""The rating engine's fast paths give what the plain per-record computations give: local time
fields from the zone's offset per UTC hour (also in hours with a transition, and in zones whose
offsets or transitions are not whole hours), digit heads of destinations that are not all digits,
time bands by precomputed segments, and the priced records, takes and unrated of the same records
given in time order or shuffled, with several pockets per subscription. Pure: no database."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obol.catalog.rates import local_times, longest_prefix_match, time_bands
from obol.usage.rating import rate
from tests.usage.rating_reference import allowances_frame, frames, prior_frame, rate_row, records_frame

TS = pl.Datetime("us", "UTC")


def plain_local_times(starts: list[datetime], tz: str) -> list[tuple[int, int, date]]:
    out = []
    for start in starts:
        local = start.astimezone(ZoneInfo(tz))
        out.append((local.isoweekday(), local.hour * 3600 + local.minute * 60 + local.second, local.date()))
    return out


def as_rows(frame: pl.DataFrame) -> list[tuple[int, int, date]]:
    return list(zip(frame["weekday"].to_list(), frame["second"].to_list(), frame["day"].to_list(), strict=True))


@pytest.mark.parametrize(("tz", "transition"), [
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),         # summer time begins
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),        # and ends
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),   # a 30-minute shift
    ("Asia/Kathmandu", datetime(1985, 12, 31, 18, 30, tzinfo=UTC)),     # +05:30 -> +05:45 at 18:30 UTC
    ("America/St_Johns", datetime(2026, 3, 8, 5, 30, tzinfo=UTC)),      # -03:30 -> -02:30
])
def test_local_times_around_transitions_equal_converting_each_start(tz, transition):
    starts = [transition + timedelta(seconds=s) for s in range(-7300, 7300, 97)]
    starts += [transition - timedelta(microseconds=1), transition, transition + timedelta(microseconds=1)]
    found = local_times(pl.Series(starts, dtype=TS), tz)
    assert as_rows(found) == plain_local_times(starts, tz)


def test_local_times_keep_nulls_and_read_a_naive_series_as_utc():
    starts = pl.Series([datetime(2026, 1, 1, 23, 30), None])
    found = local_times(starts, "Europe/Berlin")
    assert found.row(0) == (5, 1800, date(2026, 1, 2))  # Friday 00:30 in Berlin
    assert found.row(1) == (None, None, None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-2 * 10 ** 9, 4 * 10 ** 9), min_size=1, max_size=40),
       st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]))
def test_local_times_equal_converting_each_start(seconds, tz):
    starts = [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=s, microseconds=s % 1000) for s in seconds]
    assert as_rows(local_times(pl.Series(starts, dtype=TS), tz)) == plain_local_times(starts, tz)


def test_destinations_with_signs_letters_or_spaces_match_by_their_leading_digits():
    prefixes = pl.DataFrame({"prefix": ["49", "4930", "1"], "destination_group": ["de", "berlin", "nanp"]})
    destinations = ["4930123", "+4930123", "-4930", " 4930", "4930abc", "49x", "", "abc", "1", "0049",
                    "4930123456789012345", "٣٣"]
    found = longest_prefix_match(pl.Series(destinations), prefixes)
    assert found["destination_group"].to_list() == ["berlin", None, None, None, "berlin", "de", None, None,
                                                    "nanp", None, "berlin", None]
    assert found["prefix"].to_list() == ["4930", None, None, None, "4930", "49", None, None, "1", None, "4930", None]


def test_time_bands_at_window_edges_and_on_holidays():
    bands = pl.DataFrame({"band": ["night", "day", "weekend", "holiday-morning"], "days": ["12345", "12345", "67", ""],
                          "from_s": [0, 8 * 3600, 0, 6 * 3600], "to_s": [8 * 3600, 20 * 3600, 86400, 12 * 3600],
                          "calendar": [None, None, None, "de"]})
    holidays = pl.DataFrame({"calendar": ["de"], "day": [date(2026, 5, 1)]})  # a Friday
    berlin = ZoneInfo("Europe/Berlin")
    local = [datetime(2026, 5, 4, 7, 59, 59), datetime(2026, 5, 4, 8, 0), datetime(2026, 5, 4, 19, 59, 59),
             datetime(2026, 5, 4, 20, 0), datetime(2026, 5, 1, 5, 59, 59), datetime(2026, 5, 1, 6, 0),
             datetime(2026, 5, 1, 11, 59, 59), datetime(2026, 5, 1, 12, 0), datetime(2026, 5, 2, 12, 0)]
    starts = pl.Series([t.replace(tzinfo=berlin).astimezone(UTC) for t in local], dtype=TS)
    assert time_bands(starts, "Europe/Berlin", bands, holidays).to_list() == [
        "night", "day", "day", None, "night", "holiday-morning", "holiday-morning", "day", "weekend"]


def _tariffs():
    bands = [("low", "12345", 0, 8 * 3600, None), ("high", "12345", 8 * 3600, 86400, None),
             ("weekend", "67", 0, 86400, None)]
    rates = [rate_row(10 + i, group, band, 100_000 + 1000 * i, "minute", 60, 60)
             for i, (group, band) in enumerate((g, b) for g in ["eu", "world"] for b in ["low", "high", "weekend"])]
    data = rate_row(90, "data", "all", None, "megabyte", rounding_unit="kilobyte", tier_model="graduated",
                    tiers=[(5_000_000, 10_000), (None, 5_000)])
    return {
        "voice": frames("voice", [{"id": 1, "from": date(2026, 1, 1), "prefixes": {"33": "eu", "1": "world"},
                                   "bands": bands, "rates": rates}]),
        "data": frames("data", [{"id": 2, "from": date(2026, 1, 1), "default_group": "data", "rates": [data]}],
                       kind="data"),
    }


def test_the_same_records_shuffled_rate_the_same_with_pockets_taken_in_time_order():
    t0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    rows = []
    for i in range(120):
        sub = 1 + i % 4
        kind = "data" if i % 5 == 0 else "voice"
        rows.append({"record_key": f"r{i:03d}", "subscription_id": sub, "account_id": 100 + sub, "service": kind,
                     "service_kind": kind, "rate_table": kind if i % 17 else "gone",
                     "start": t0 + timedelta(minutes=7 * i), "quantity": 3_000_000 if kind == "data" else 50 + i,
                     "destination": "" if kind == "data" else ("3312" if i % 3 else ("1555" if i % 7 else "99"))})
    records = records_frame(rows)
    pockets = allowances_frame([
        {"pocket_id": 1, "subscription_id": 1, "service": "voice", "remaining": 400, "priority": 1},
        {"pocket_id": 2, "subscription_id": 1, "service": "voice", "remaining": 300, "priority": 2,
         "destination_groups": ["eu"]},
        {"pocket_id": 3, "subscription_id": 2, "service": "voice", "remaining": 1000, "priority": 1,
         "valid_until": t0 + timedelta(hours=5)},
        {"pocket_id": 4, "subscription_id": 2, "service": "data", "remaining": 4_000_000, "priority": 1},
    ])
    prior = prior_frame([{"subscription_id": 2, "service": "data", "rate_table": "data",
                          "quantity_before": 4 * 1024 * 1024}])
    ordered = rate(records, _tariffs(), pockets, prior, tz="Europe/Berlin")
    shuffled_input = records.sample(fraction=1.0, shuffle=True, seed=3)
    shuffled = rate(shuffled_input, _tariffs(), pockets, prior, tz="Europe/Berlin")

    assert shuffled.rated["record_key"].to_list() == [k for k in shuffled_input["record_key"].to_list()
                                                      if k in set(ordered.rated["record_key"].to_list())]
    assert shuffled.rated.sort("record_key").equals(ordered.rated.sort("record_key"))
    assert shuffled.unrated.sort("record_key").equals(ordered.unrated.sort("record_key"))
    assert sorted(ordered.unrated["reason"].unique().to_list()) == ["no_destination", "no_rate_table"]
    # pocket 2 (restricted to eu) is taken before pocket 1, both until empty, then subscription 1 pays
    takes = ordered.takes
    assert takes.filter(pl.col("pocket_id") == 2)["quantity"].sum() == 300
    assert takes.filter(pl.col("pocket_id") == 1)["quantity"].sum() == 400
    first_eu = ordered.rated.filter((pl.col("subscription_id") == 1) & (pl.col("destination_group") == "eu")).row(
        0, named=True)
    assert takes.filter(pl.col("record_key") == first_eu["record_key"])["pocket_id"].to_list() == [2]
    # pocket 3 ends after 5 hours: later calls of subscription 2 are charged in full
    late = ordered.rated.filter((pl.col("subscription_id") == 2) & (pl.col("service") == "voice")
                                & (pl.col("start") >= t0 + timedelta(hours=5)))
    assert late.height > 0 and (late["included"] == 0).all()
    # takes come in the input order of their records, then by pocket
    order = {k: i for i, k in enumerate(shuffled_input["record_key"].to_list())}
    positions = [(order[k], p) for k, p in shuffled.takes.select("record_key", "pocket_id").iter_rows()]
    assert positions == sorted(positions)
    assert sorted(shuffled.takes.rows()) == sorted(takes.rows())
    # data of subscription 2 (3,000,000 B each): the first is included, the second takes the last
    # 1,000,000 B and bills 2,000,000 B as 1954 KB from 4 MB on (prior usage): 1 MB at 0.01/MB up to
    # the 5 MB bound, 952,320 B at 0.005/MB; the third is all in the second tier: 2930 KB at 0.005/MB
    data = ordered.rated.filter((pl.col("subscription_id") == 2) & (pl.col("service") == "data"))
    assert data.select("included", "billed", "price_micros").rows()[:3] == [
        (3_000_000, 0, 0), (1_000_000, 2_000_896, 10_000 + 4541), (0, 3_000_320, 14_307)]


def test_versions_by_local_date_with_one_version_per_table_and_a_table_without_versions():
    rates = [rate_row(1, "eu", "all", 60_000, "minute", 60, 60)]
    tariffs = {
        "voice": frames("voice", [{"id": 1, "from": date(2026, 3, 1), "prefixes": {"33": "eu"}, "rates": rates}]),
        "empty": frames("empty", []),
        "sms": frames("sms", [{"id": 2, "from": date(2026, 1, 1), "default_group": "eu",
                               "rates": [rate_row(2, "eu", "all", 90_000, "sms")]},
                              {"id": 3, "from": date(2026, 3, 1), "default_group": "eu",
                               "rates": [rate_row(3, "eu", "all", 80_000, "sms")]}], kind="sms"),
    }
    # 23:30 UTC on 28 February is 1 March in Berlin: the voice version is in force
    starts = [datetime(2026, 2, 28, 22, 59, 59, tzinfo=UTC), datetime(2026, 2, 28, 23, 30, tzinfo=UTC)]
    rows = [{"record_key": f"{table}-{i}", "subscription_id": 1, "account_id": 1, "service": table,
             "service_kind": "sms" if table == "sms" else "voice", "rate_table": table, "start": start,
             "quantity": 60 if table != "sms" else 1, "destination": "3312"}
            for table in ["voice", "empty", "sms"] for i, start in enumerate(starts)]
    result = rate(records_frame(rows), tariffs, allowances_frame([]), prior_frame([]), tz="Europe/Berlin")
    assert result.unrated.select("record_key", "reason").rows() == [
        ("voice-0", "no_tariff_version"), ("empty-0", "no_tariff_version"), ("empty-1", "no_tariff_version")]
    assert result.rated.select("record_key", "tariff_version_id", "price_micros").rows() == [
        ("voice-1", 1, 60_000), ("sms-0", 2, 90_000), ("sms-1", 3, 80_000)]
