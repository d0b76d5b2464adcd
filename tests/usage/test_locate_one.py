"""Real-time charging places one record with `lookup.OneRecord`; batch rating places frames with
`lookup.locate`. Same rules: on random tariffs (versions, prefixes, overlapping bands, holidays)
and random records both give the same version, group, band and rate, or the same reason."""
from datetime import UTC, date, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from obol.usage.rating.lookup import OneRecord, _Catalog, locate, reasons
from tests.usage.rating_reference import frames, rate_row

GROUPS = ["g1", "g2", "g3"]
BANDS = ["peak", "off", "hol"]
T0 = datetime(2025, 12, 20, tzinfo=UTC)
PREFIX = st.text("0123456789", min_size=1, max_size=5) | st.sampled_from(["+4", "4a", "x"])


@st.composite
def tariffs(draw):
    versions = []
    for number in range(draw(st.integers(1, 3))):
        since = date(2025, 12, 1) + timedelta(days=draw(st.integers(0, 40)))
        windows = []
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.integers(0, 86_399))
            end = draw(st.integers(start + 1, 86_400))
            days = "".join(sorted(draw(st.sets(st.sampled_from("1234567"), min_size=1))))
            calendar = draw(st.sampled_from([None, None, "de"]))
            windows.append((draw(st.sampled_from(BANDS)), "" if calendar else days, start, end, calendar))
        version = {"id": number + 1, "from": since, "bands": windows,
                   "rates": [rate_row(10 * number + i, group, band, 1000) for i, (group, band) in enumerate(
                       draw(st.sets(st.tuples(st.sampled_from(GROUPS), st.sampled_from(BANDS + ["all"])),
                                    max_size=8)))]}
        if draw(st.booleans()):
            version["prefixes"] = draw(st.dictionaries(PREFIX, st.sampled_from(GROUPS), max_size=12))
        else:
            version["default_group"] = draw(st.sampled_from(GROUPS))
        versions.append(version)
    holidays = [("de", date(2025, 12, 20) + timedelta(days=d), "h") for d in
                draw(st.sets(st.integers(0, 60), max_size=6))]
    return {"voice": frames("voice", versions, holidays=holidays)}


@settings(max_examples=300, deadline=None)
@given(tariffs(), st.lists(st.tuples(st.sampled_from(["voice", "sms"]),
                                     st.text("0123456789+a", max_size=8),
                                     st.integers(0, 60 * 86400)), min_size=1, max_size=15),
       st.sampled_from(["Europe/Berlin", "UTC", "America/New_York"]))
def test_one_record_is_placed_as_the_engine_places_a_frame(tables, records, tz):
    catalog = _Catalog(tables)
    frame = pl.DataFrame({"rate_table": [r[0] for r in records], "destination": [r[1] for r in records],
                          "start": [T0 + timedelta(seconds=r[2]) for r in records]},
                         schema={"rate_table": pl.String, "destination": pl.String,
                                 "start": pl.Datetime("us", "UTC")})
    codes = locate(frame, catalog, tz)
    why = reasons(codes).to_list()
    one = OneRecord(catalog)
    for i, (table, destination, offset) in enumerate(records):
        found = one.locate(table, destination, T0 + timedelta(seconds=offset), tz)
        if why[i] is not None:
            assert found == why[i]
        else:
            assert found == tuple(codes.row(i))


def test_a_version_whose_only_band_is_a_holiday_band_rates_a_batch_without_failing():
    # found by the comparison above: with no weekly window, the engine used to give one row for a
    # whole batch and fail; now the holiday's records are priced and the others have no rate
    tables = {"voice": frames("voice", [{"id": 1, "from": date(2025, 1, 1), "default_group": "g1",
                                         "bands": [("hol", "", 0, 86_400, "de")],
                                         "rates": [rate_row(1, "g1", "hol", 1000)]}],
                              holidays=[("de", date(2025, 12, 25), "Weihnachten")])}

    def place(*days):
        frame = pl.DataFrame({"rate_table": ["voice"] * len(days), "destination": ["49"] * len(days),
                              "start": [datetime(2025, 12, d, 12, tzinfo=UTC) for d in days]},
                             schema={"rate_table": pl.String, "destination": pl.String,
                                     "start": pl.Datetime("us", "UTC")})
        return reasons(locate(frame, _Catalog(tables), "Europe/Berlin")).to_list()

    assert place(24, 25, 26) == ["no_rate", None, "no_rate"]
    assert place(22, 23) == ["no_rate", "no_rate"]  # no holiday among the batch's days
