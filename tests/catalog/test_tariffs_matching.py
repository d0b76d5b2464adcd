"""The two pure helpers of the rating engine against per-record reference implementations:
longest prefix match and time bands (in the tenant's zone, with holidays and DST)."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from obol.catalog.rates import longest_prefix_match, time_bands

BERLIN = "Europe/Berlin"
BANDS = pl.DataFrame({
    "band": ["offpeak", "peak", "offpeak", "weekend", "holiday"],
    "days": ["12345", "12345", "12345", "67", ""],
    "from_s": [0, 8 * 3600, 20 * 3600, 0, 0],
    "to_s": [8 * 3600, 20 * 3600, 86400, 86400, 86400],
    "calendar": [None, None, None, None, "de-public"],
})
HOLIDAYS = pl.DataFrame({"calendar": ["de-public", "de-public"], "day": [date(2026, 5, 1), date(2026, 10, 3)]})


# --- reference implementations: one record at a time ---------------------------------------


def reference_match(destination: str | None, prefixes: dict[str, str]) -> tuple[str | None, str | None]:
    if destination is None:
        return None, None
    for length in range(len(destination), 0, -1):
        if destination[:length] in prefixes:
            return prefixes[destination[:length]], destination[:length]
    return None, None


def reference_band(start: datetime, tz: str, bands: pl.DataFrame, holidays: pl.DataFrame) -> str | None:
    local = start.astimezone(ZoneInfo(tz))
    second = local.hour * 3600 + local.minute * 60 + local.second
    calendars = {row["calendar"] for row in holidays.iter_rows(named=True) if row["day"] == local.date()}
    for band in bands.iter_rows(named=True):
        if band["calendar"] in calendars and band["from_s"] <= second < band["to_s"]:
            return band["band"]
    for band in bands.iter_rows(named=True):
        if band["calendar"] is None and str(local.isoweekday()) in band["days"] \
                and band["from_s"] <= second < band["to_s"]:
            return band["band"]
    return None


# --- longest prefix match ------------------------------------------------------------------


def test_the_longest_prefix_wins():
    prefixes = pl.DataFrame({"prefix": ["44", "4420", "49", "49151"],
                             "destination_group": ["uk", "london", "national-fixed", "national-mobile"]})
    found = longest_prefix_match(pl.Series(["442071234567", "441611234567", "4915112345678", "4930123", "3312",
                                            None, "4"]), prefixes)
    assert found.rows() == [
        ("442071234567", "london", "4420"), ("441611234567", "uk", "44"),
        ("4915112345678", "national-mobile", "49151"), ("4930123", "national-fixed", "49"),
        ("3312", None, None), (None, None, None), ("4", None, None)]


@settings(max_examples=200, deadline=None)
@given(prefixes=st.dictionaries(st.text("0123", min_size=1, max_size=5), st.sampled_from(["a", "b", "c"]),
                                max_size=40),
       destinations=st.lists(st.none() | st.text("0123", min_size=0, max_size=8), max_size=60))
def test_longest_prefix_match_equals_the_reference(prefixes, destinations):
    frame = pl.DataFrame({"prefix": list(prefixes), "destination_group": list(prefixes.values())},
                         schema={"prefix": pl.String, "destination_group": pl.String})
    found = longest_prefix_match(pl.Series(destinations, dtype=pl.String), frame)
    expected = [(d, *reference_match(d, prefixes)) for d in destinations]
    assert found.rows() == expected


@settings(max_examples=100, deadline=None)
@given(prefixes=st.dictionaries(st.text("01*#", min_size=1, max_size=4) | st.text("12", min_size=16, max_size=18),
                                st.sampled_from(["a", "b", "c"]), max_size=30),
       destinations=st.lists(st.none() | st.text("01*#", min_size=0, max_size=8)
                             | st.text("12", min_size=14, max_size=20), max_size=60))
def test_prefixes_that_are_not_short_digit_strings_match_like_the_reference(prefixes, destinations):
    """Prefixes with other characters than digits or longer than 15 digits (the general path)."""
    frame = pl.DataFrame({"prefix": list(prefixes), "destination_group": list(prefixes.values())},
                         schema={"prefix": pl.String, "destination_group": pl.String})
    found = longest_prefix_match(pl.Series(destinations, dtype=pl.String), frame)
    assert found.rows() == [(d, *reference_match(d, prefixes)) for d in destinations]


@settings(max_examples=100, deadline=None)
@given(prefixes=st.dictionaries(st.text("0123456789", min_size=1, max_size=15), st.sampled_from(["a", "b"]),
                                min_size=1, max_size=40),
       destinations=st.lists(st.text("0123456789", min_size=0, max_size=20) | st.text("09+ -", max_size=6),
                             max_size=60))
def test_long_digit_destinations_and_zeros_match_like_the_reference(prefixes, destinations):
    """Up to 15-digit prefixes, destinations longer than 15 digits, leading and trailing zeros
    (0 vs 00 vs 000 are different prefixes) and stray characters."""
    destinations = destinations + [p + "0" for p in prefixes] + [p[:-1] for p in prefixes]
    frame = pl.DataFrame({"prefix": list(prefixes), "destination_group": list(prefixes.values())},
                         schema={"prefix": pl.String, "destination_group": pl.String})
    found = longest_prefix_match(pl.Series(destinations, dtype=pl.String), frame)
    assert found.rows() == [(d, *reference_match(d, prefixes)) for d in destinations]


# --- time bands ----------------------------------------------------------------------------


def bands_of(*starts: datetime) -> list[str | None]:
    return time_bands(pl.Series([s.astimezone(timezone.utc) for s in starts]), BERLIN, BANDS, HOLIDAYS).to_list()


def test_peak_starts_at_eight_local_time_weekends_and_holidays():
    berlin = ZoneInfo(BERLIN)
    assert bands_of(
        datetime(2026, 1, 14, 7, 59, 59, tzinfo=berlin),  # Wednesday
        datetime(2026, 1, 14, 8, 0, 0, tzinfo=berlin),
        datetime(2026, 1, 14, 19, 59, 59, tzinfo=berlin),
        datetime(2026, 1, 14, 20, 0, 0, tzinfo=berlin),
        datetime(2026, 1, 17, 12, 0, tzinfo=berlin),  # Saturday
        datetime(2026, 1, 18, 23, 59, 59, tzinfo=berlin),  # Sunday
        datetime(2026, 5, 1, 12, 0, tzinfo=berlin),  # Friday, Tag der Arbeit
        datetime(2026, 10, 3, 12, 0, tzinfo=berlin),  # Saturday and a holiday: the holiday wins
    ) == ["offpeak", "peak", "peak", "offpeak", "weekend", "weekend", "holiday", "holiday"]


def test_the_band_follows_daylight_saving_time():
    # 06:00 UTC is 08:00 in Berlin in summer (CEST, +2) and 07:00 in winter (CET, +1).
    summer = datetime(2026, 10, 23, 6, 0, tzinfo=timezone.utc)  # Friday before the change
    winter = datetime(2026, 10, 26, 6, 0, tzinfo=timezone.utc)  # Monday after the change
    assert bands_of(summer - timedelta(seconds=1), summer, winter, winter + timedelta(hours=1)) == [
        "offpeak", "peak", "offpeak", "peak"]
    # 2026-03-29 (Sunday) the clocks go forward: still the weekend, either side of the gap.
    assert bands_of(datetime(2026, 3, 29, 0, 59, tzinfo=timezone.utc),
                    datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)) == ["weekend", "weekend"]


def test_a_naive_series_is_read_as_utc_and_no_bands_means_all():
    naive = pl.Series([datetime(2026, 1, 14, 7, 0)])  # 08:00 in Berlin
    assert time_bands(naive, BERLIN, BANDS, HOLIDAYS).to_list() == ["peak"]
    assert time_bands(naive, BERLIN, BANDS.clear(), HOLIDAYS).to_list() == ["all"]


@settings(max_examples=150, deadline=None)
@given(starts=st.lists(st.datetimes(min_value=datetime(2025, 12, 25), max_value=datetime(2027, 1, 5),
                                    timezones=st.just(timezone.utc)), max_size=50),
       tz=st.sampled_from([BERLIN, "America/New_York", "UTC", "Asia/Kolkata"]))
def test_time_bands_equal_the_reference(starts, tz):
    starts = [s.replace(microsecond=0) for s in starts]
    series = pl.Series(starts, dtype=pl.Datetime("us", "UTC"))
    assert time_bands(series, tz, BANDS, HOLIDAYS).to_list() == [reference_band(s, tz, BANDS, HOLIDAYS)
                                                                 for s in starts]
