"""Real-time charging prices one session with `billed_one` / `price_one`; batch rating prices frames
with `billed_expr` / `price`. They are the same rules: equal on random rates and quantities."""
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from obol.usage.rating.pricing import billed_expr, billed_one, price, price_one

RATES = st.fixed_dictionaries({
    "kind": st.sampled_from(["voice", "data", "sms", "event"]),
    "first": st.none() | st.integers(1, 120),
    "step": st.none() | st.integers(1, 60),
    "rounding_factor": st.sampled_from([1, 1024, 1024 ** 2]),
    "price_micros": st.sampled_from([1, 3, 5, 45, 100_000]) | st.integers(0, 2_000_000),
    "factor": st.sampled_from([1, 60, 3600, 1024, 1024 ** 2]),
    "minimum": st.none() | st.integers(0, 1_000_000),
    "fee": st.none() | st.integers(0, 500_000),
    "rule": st.sampled_from(["half_up", "half_even"]),
})


@settings(max_examples=400, deadline=None)
@given(RATES, st.lists(st.integers(0, 10 ** 9) | st.integers(0, 200), min_size=1, max_size=20))
def test_one_record_is_priced_as_the_engine_prices_a_frame(rate, quantities):
    frame = pl.DataFrame({
        "service_kind": [rate["kind"]] * len(quantities), "charged": quantities,
        "first_increment_s": [rate["first"]] * len(quantities), "next_increment_s": [rate["step"]] * len(quantities),
        "_rounding_factor": [rate["rounding_factor"]] * len(quantities),
        "price_micros": [rate["price_micros"]] * len(quantities), "_factor": [rate["factor"]] * len(quantities),
        "minimum_charge_micros": [rate["minimum"]] * len(quantities),
        "connection_fee_micros": [rate["fee"]] * len(quantities), "_by_tiers": [False] * len(quantities),
    }, schema_overrides={"first_increment_s": pl.Int64, "next_increment_s": pl.Int64,
                         "minimum_charge_micros": pl.Int64, "connection_fee_micros": pl.Int64})
    frame = frame.with_columns(billed_expr(pl.col("service_kind"), pl.col("charged"), pl.col("_rounding_factor"))
                               .alias("billed"))
    prices = price(frame, False, rate["rule"]).to_list()
    for charged, billed, expected in zip(quantities, frame["billed"].to_list(), prices, strict=True):
        one = billed_one(rate["kind"], charged, rate["first"], rate["step"], rate["rounding_factor"])
        assert one == billed
        assert price_one(charged, one, rate["price_micros"], rate["factor"], rate["minimum"], rate["fee"],
                         rate["rule"]) == expected


def test_worked_examples():
    # 61 s at 0.10/min: 60/60 -> 120 s billed, 0.20; 30/6 -> 66 s, 0.11
    assert billed_one("voice", 61, 60, 60, 1) == 120
    assert price_one(61, 120, 100_000, 60, 0, 0, "half_up") == 200_000
    assert billed_one("voice", 61, 30, 6, 1) == 66
    assert price_one(61, 66, 100_000, 60, 0, 0, "half_up") == 110_000
