"""Worked examples of the rating engine, computed by hand. Pure: no database.

Money is in micro-units: 1 EUR = 1_000_000, so 0.10 EUR/min is 100_000."""
from datetime import UTC, date, datetime

import polars as pl
import pytest

from obol.usage.rating import cover_with_money, rate
from tests.usage.rating_reference import allowances_frame, frames, prior_frame, rate_row, records_frame

BERLIN = "Europe/Berlin"
WEEKLY = [("offpeak", "12345", 0, 8 * 3600, None), ("peak", "12345", 8 * 3600, 20 * 3600, None),
          ("offpeak", "12345", 20 * 3600, 86400, None), ("weekend", "67", 0, 86400, None),
          ("holiday", "", 0, 86400, "de")]
WED_NOON = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)   # Wednesday 12:00 in Berlin (CET): peak


def voice_table(first=60, next_=60, minimum=0, fee=0, code="voice"):
    rates = []
    for i, (group, base) in enumerate([("uk", 100_000), ("london", 100_000), ("de", 100_000)]):
        for j, band in enumerate(["peak", "offpeak", "weekend", "holiday"]):
            price = base if band == "peak" else 50_000
            rates.append(rate_row(10 * i + j + 1, group, band, price, "minute", first, next_, minimum, fee))
    return frames(code, [{"id": 1, "from": date(2025, 1, 1), "prefixes": {"44": "uk", "4420": "london", "49": "de"},
                          "bands": WEEKLY, "rates": rates}],
                  holidays=[("de", date(2026, 4, 3), "Karfreitag")])


def call(key, seconds, start=WED_NOON, destination="4930123456", subscription=1, table="voice", kind="voice"):
    return {"record_key": key, "subscription_id": subscription, "account_id": 100 + subscription,
            "service": kind, "service_kind": kind, "rate_table": table, "start": start, "quantity": seconds,
            "destination": destination}


NO_POCKETS = allowances_frame([])
NO_PRIOR = prior_frame([])


def run(records, tariffs, pockets=NO_POCKETS, prior=NO_PRIOR, rounding="half_up"):
    return rate(records_frame(records), tariffs, pockets, prior, tz=BERLIN, rounding=rounding)


def by_key(result, *columns):
    return {row[0]: row[1:] if len(row) > 2 else row[1]
            for row in result.rated.select("record_key", *columns).iter_rows()}


def test_61_seconds_at_ten_cents_a_minute_with_60_60_costs_twenty_cents():
    result = run([call("a", 61)], {"voice": voice_table(60, 60)})
    # billed 60 + ceil(1/60)*60 = 120 s = 2 min x 0.10
    assert by_key(result, "charged", "billed", "price_micros") == {"a": (61, 120, 200_000)}
    assert result.rated["currency"].to_list() == ["EUR"]


def test_61_seconds_with_30_6_costs_eleven_cents():
    result = run([call("a", 61)], {"voice": voice_table(30, 6)})
    # billed 30 + ceil(31/6)*6 = 66 s; 0.10 x 66/60 = 0.11
    assert by_key(result, "billed", "price_micros") == {"a": (66, 110_000)}


def pocket(pocket_id, remaining, subscription=1, service="voice", priority=100, valid_from=None, valid_until=None,
           groups=()):
    return {"pocket_id": pocket_id, "subscription_id": subscription, "service": service, "remaining": remaining,
            "priority": priority, "valid_from": valid_from, "valid_until": valid_until,
            "destination_groups": list(groups)}


def test_a_30_second_call_inside_the_allowance_costs_nothing():
    result = run([call("a", 30)], {"voice": voice_table()}, allowances_frame([pocket(7, 3600)]))
    assert by_key(result, "included", "charged", "billed", "price_micros") == {"a": (30, 0, 0, 0)}
    assert result.takes.rows() == [("a", 7, 30)]


def test_a_20_minute_call_with_5_allowance_minutes_left_charges_exactly_15_minutes():
    result = run([call("a", 1200)], {"voice": voice_table()}, allowances_frame([pocket(7, 300)]))
    # 300 s free, 900 s charged = 15 min x 0.10 = 1.50
    assert by_key(result, "included", "charged", "billed", "price_micros") == {"a": (300, 900, 900, 1_500_000)}
    assert result.takes.rows() == [("a", 7, 300)]


def test_07_59_59_on_a_weekday_is_offpeak_and_08_00_00_is_peak():
    # Wednesday 4 March 2026, Berlin is UTC+1: 07:59:59 local = 06:59:59 UTC
    early = call("early", 60, datetime(2026, 3, 4, 6, 59, 59, tzinfo=UTC))
    eight = call("eight", 60, datetime(2026, 3, 4, 7, 0, 0, tzinfo=UTC))
    summer = call("summer", 60, datetime(2026, 7, 1, 6, 0, 0, tzinfo=UTC))    # 08:00 CEST
    saturday = call("saturday", 60, datetime(2026, 3, 7, 11, 0, tzinfo=UTC))
    good_friday = call("friday", 60, datetime(2026, 4, 3, 10, 0, tzinfo=UTC))
    result = run([early, eight, summer, saturday, good_friday], {"voice": voice_table()})
    assert by_key(result, "time_band", "price_micros") == {
        "early": ("offpeak", 50_000), "eight": ("peak", 100_000), "summer": ("peak", 100_000),
        "saturday": ("weekend", 50_000), "friday": ("holiday", 50_000)}


def test_the_longest_prefix_wins():
    result = run([call("london", 60, destination="442071234567"), call("uk", 60, destination="441611234567")],
                 {"voice": voice_table()})
    assert by_key(result, "destination_group") == {"london": "london", "uk": "uk"}


def test_minimum_charge_and_connection_fee_apply_to_the_charged_part_only():
    table = {"voice": voice_table(1, 1, minimum=50_000, fee=20_000)}
    pockets = allowances_frame([pocket(7, 10)])
    # a: 10 s free (the pocket), 0 charged: costs nothing; b: 6 s charged = 0.01 -> minimum 0.05 + fee 0.02
    # c: 600 s = 1.00 > minimum: 1.00 + 0.02
    result = run([call("a", 10), call("b", 6, datetime(2026, 3, 4, 11, 5, tzinfo=UTC)),
                  call("c", 600, datetime(2026, 3, 4, 11, 10, tzinfo=UTC))], table, pockets)
    assert by_key(result, "included", "charged", "price_micros") == {
        "a": (10, 0, 0), "b": (0, 6, 70_000), "c": (0, 600, 1_020_000)}


def test_rounding_half_up_and_half_even_at_the_rating_place():
    # 0.000015 EUR/s x 1 s... use 0.000090/min: 10 s = 0.000015 = 15 micros; 0.000003/min x 10 s = 0.5 micro
    table = frames("voice", [{"id": 1, "from": date(2025, 1, 1), "prefixes": {"4": "all"},
                              "rates": [rate_row(1, "all", "all", 3, "minute", 1, 1)]}])
    records = [call("half", 10), call("one_and_half", 30, datetime(2026, 3, 4, 12, tzinfo=UTC))]
    # 3 micros/min x 10/60 = 0.5 -> 1 (half up) / 0 (half even); x 30/60 = 1.5 -> 2 / 2
    assert by_key(run(records, {"voice": table}), "price_micros") == {"half": 1, "one_and_half": 2}
    assert by_key(run(records, {"voice": table}, rounding="half_even"), "price_micros") == {
        "half": 0, "one_and_half": 2}


def data_table(tier_model=None, tiers=(), rounding_unit="kilobyte"):
    return frames("data", [{"id": 5, "from": date(2025, 1, 1), "default_group": "data",
                            "rates": [rate_row(50, "data", "all", None if tier_model else 10_000, "megabyte",
                                               rounding_unit=rounding_unit, tier_model=tier_model, tiers=tiers)]}],
                  kind="data")


def data(key, volume, minute=0, subscription=1):
    return {**call(key, volume, datetime(2026, 3, 4, 11, minute, tzinfo=UTC), "", subscription, "data", "data")}


def test_data_is_rounded_up_to_the_kilobyte_per_record_then_priced_per_megabyte():
    result = run([data("a", 1500), data("b", 1024 * 1024, 1)], {"data": data_table()})
    # a: 1500 B -> 2 KB = 2048 B; 0.01 EUR/MB x 2048/1048576 = 19.53125 micros -> 20
    assert by_key(result, "billed", "price_micros") == {"a": (2048, 20), "b": (1048576, 10_000)}


def test_graduated_tiers_count_the_cycle_usage_before_this_file():
    mb = 1024 * 1024
    # first 1024 MB at 0.01, then 0.005; 1020 MB already used in the cycle
    table = {"data": data_table("graduated", [(1024_000_000, 10_000), (None, 5_000)], "megabyte")}
    prior = prior_frame([{"subscription_id": 1, "service": "data", "rate_table": "data",
                          "quantity_before": 1020 * mb}])
    result = run([data("a", 10 * mb), data("b", 10 * mb, 1)], table, prior=prior)
    # a: 4 MB x 0.01 + 6 MB x 0.005 = 0.07; b: all above 1024 MB: 10 x 0.005 = 0.05
    assert by_key(result, "price_micros") == {"a": 70_000, "b": 50_000}


def test_volume_tiers_price_the_new_units_at_the_tier_reached_without_repricing_earlier_records():
    mb = 1024 * 1024
    table = {"data": data_table("volume", [(1024_000_000, 10_000), (None, 5_000)], "megabyte")}
    prior = prior_frame([{"subscription_id": 1, "service": "data", "rate_table": "data",
                          "quantity_before": 1020 * mb}])
    result = run([data("a", 2 * mb), data("b", 10 * mb, 1)], table, prior=prior)
    # a ends at 1022 MB: tier 1, 2 x 0.01; b ends at 1032 MB: tier 2, 10 x 0.005 (a is not re-priced)
    assert by_key(result, "price_micros") == {"a": 20_000, "b": 50_000}


def test_allowances_restricted_first_then_priority_and_only_while_valid():
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    pockets = allowances_frame([
        pocket(1, 60, priority=1),                                    # any destination
        pocket(2, 60, priority=9, groups=["london"]),                  # restricted: first for london calls
        pocket(3, 600, priority=0, valid_from=t0, valid_until=datetime(2026, 3, 4, 11, 30, tzinfo=UTC)),
    ])
    london = call("london", 100, destination="4420777")
    later = call("later", 100, datetime(2026, 3, 4, 12, 0, tzinfo=UTC))   # pocket 3 expired by then
    result = run([london, later], {"voice": voice_table()}, pockets)
    # london: 60 from pocket 2 (restricted), 40 from pocket 3 (priority 0); later: 60 from pocket 1, 40 charged
    assert result.takes.sort("record_key", "pocket_id").rows() == [
        ("later", 1, 60), ("london", 2, 60), ("london", 3, 40)]
    assert by_key(result, "included", "charged", "billed") == {"london": (100, 0, 0), "later": (60, 40, 60)}


def test_unrated_reasons_and_every_record_in_exactly_one_frame():
    table = voice_table()
    no_band = frames("nobands", [{"id": 9, "from": date(2025, 1, 1), "prefixes": {"49": "de", "44": "uk"},
                                  "rates": [rate_row(90, "de", "all", 1)]}])
    records = [call("ok", 60), call("unknown", 60, table="nope"),
               call("early", 60, datetime(2024, 12, 31, 22, 59, tzinfo=UTC)),   # 23:59 Berlin, before version
               call("nodest", 60, destination="33123"), call("empty", 60, destination=""),
               call("norate", 60, destination="44123", table="nobands")]
    result = run(records, {"voice": table, "nobands": no_band})
    assert result.rated["record_key"].to_list() == ["ok"]
    assert dict(result.unrated.select("record_key", "reason").iter_rows()) == {
        "unknown": "no_rate_table", "early": "no_tariff_version", "nodest": "no_destination",
        "empty": "no_destination", "norate": "no_rate"}


def test_version_chosen_by_the_local_date_of_the_start():
    v1 = [rate_row(1, "de", "all", 100_000)]
    v2 = [rate_row(2, "de", "all", 200_000)]
    table = frames("voice", [{"id": 1, "from": date(2025, 1, 1), "prefixes": {"49": "de"}, "rates": v1},
                             {"id": 2, "from": date(2026, 1, 1), "prefixes": {"49": "de"}, "rates": v2}])
    # 23:30 UTC on 31 Dec is 00:30 on 1 Jan in Berlin: the new version
    result = run([call("old", 60, datetime(2025, 12, 31, 22, 59, tzinfo=UTC)),
                  call("new", 60, datetime(2025, 12, 31, 23, 30, tzinfo=UTC))], {"voice": table})
    assert by_key(result, "tariff_version_id", "price_micros") == {"old": (1, 100_000), "new": (2, 200_000)}


def test_extra_columns_pass_through():
    records = records_frame([call("a", 61)]).with_columns(pl.lit("f.csv").alias("file"), pl.lit(3).alias("line"))
    result = rate(records, {"voice": voice_table()}, NO_POCKETS, NO_PRIOR, tz=BERLIN)
    assert result.rated.select("record_key", "file", "line", "price_micros").rows() == [("a", "f.csv", 3, 200_000)]


def test_prepaid_money_covers_records_in_chronological_order():
    records = [call("a", 60, datetime(2026, 3, 4, 11, 0, tzinfo=UTC)),    # 0.10
               call("b", 600, datetime(2026, 3, 4, 11, 5, tzinfo=UTC)),   # 1.00
               call("c", 60, datetime(2026, 3, 4, 11, 30, tzinfo=UTC)),   # 0.10: would fit, but after b
               call("d", 60, datetime(2026, 3, 4, 11, 0, tzinfo=UTC), subscription=2)]
    rated = run(records, {"voice": voice_table()}).rated
    covered = cover_with_money(rated, pl.DataFrame({"account_id": [101], "available_micros": [500_000]}))
    # account 101 has 0.50: a fits (0.10), b does not (1.10 > 0.50), c is after b; account 102 is not prepaid
    assert dict(covered.select("record_key", "uncovered").iter_rows()) == {
        "a": False, "b": True, "c": True, "d": False}
    assert covered["record_key"].to_list() == ["a", "b", "c", "d"]


@pytest.mark.parametrize("kind", ["sms", "event"])
def test_events_are_priced_per_unit(kind):
    table = frames("ev", [{"id": 3, "from": date(2025, 1, 1), "default_group": "any",
                           "rates": [rate_row(30, "any", "all", 90_000, kind)]}], kind=kind)
    result = run([call("a", 3, table="ev", kind=kind, destination="")], {"ev": table})
    assert by_key(result, "billed", "price_micros") == {"a": (3, 270_000)}
