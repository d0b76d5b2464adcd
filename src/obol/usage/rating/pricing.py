"""Billed quantity and price of each record, in integer micro-units (1 EUR = 1_000_000).

- billed (`billed_expr`): voice by increments (first / next; defaults 60 / the first):
  0 if charged = 0, else first + ceil(max(charged - first, 0) / next) * next; data rounded up to
  the rate's `rounding_unit` (default kilobyte, 1024-based) per record; everything else as counted.
- price of the billed units (`amount`): billed × unit price / (storage units per rate unit:
  minute 60, second 1, kilobyte 1024, megabyte 1024², gigabyte 1024³, sms/mms/event/play 1),
  rounded ONCE per record to whole micro-units (`RoundingPlace.RATING`, 6 decimals) by the
  tenant's rule (half_up or half_even). Tiered rates round the record's sum over its tiers once.
- then, when charged > 0: at least `minimum_charge`, plus `connection_fee` (once per record).
  A record fully covered by allowances (charged = 0) costs 0: no minimum, no connection fee.

Exact integer arithmetic without overflow: units = q × factor + r, so units × price / factor =
q × price + r × price / factor with r < factor (at most 1024³); only the last part is rounded.
"""
from __future__ import annotations

import polars as pl


from obol.core.rounding import RoundingRule
from obol.core.units import get_unit

DEFAULT_FIRST_INCREMENT_S = 60
DEFAULT_DATA_ROUNDING_UNIT = "kilobyte"


def unit_factor(unit: str | None) -> int:
    """Storage units (seconds, bytes, events) in one `unit`; events count 1."""
    if unit is None:
        return 1
    factor = get_unit(unit).base_factor
    if factor != int(factor):
        raise ValueError(f"unit {unit} is not a whole number of storage units")
    return int(factor)


def billed_expr(kind: pl.Expr, charged: pl.Expr, rounding_factor: pl.Expr) -> pl.Expr:
    first = pl.col("first_increment_s").fill_null(DEFAULT_FIRST_INCREMENT_S)
    step = pl.col("next_increment_s").fill_null(first)
    over_first = (charged - first).clip(0)
    voice = pl.when(charged == 0).then(0).otherwise(first + ((over_first + step - 1) // step) * step)
    data = ((charged + rounding_factor - 1) // rounding_factor) * rounding_factor
    return (pl.when(kind == "voice").then(voice).when(kind == "data").then(data).otherwise(charged)
            .cast(pl.Int64))


def rounded_div(whole: pl.Expr, numerator: pl.Expr, denominator: pl.Expr, rule: str) -> pl.Expr:
    """whole + numerator / denominator (all ≥ 0) rounded to an integer by `rule`."""
    rule = RoundingRule(rule)
    base = whole + numerator // denominator
    twice_rest = 2 * (numerator % denominator)
    if rule == RoundingRule.HALF_UP:
        up = twice_rest >= denominator
    else:
        up = (twice_rest > denominator) | ((twice_rest == denominator) & (base % 2 == 1))
    return base + up.cast(pl.Int64)


def price(frame: pl.DataFrame, tiered: bool, rule: str) -> pl.Series:
    """The price (micro-units) of each row of `frame`: the rate columns, `_by_tiers` (the rate has a
    tier model), `charged`, `billed` and `_factor`, and when `tiered` the `_whole` / `_rest` of the
    records priced by tiers (`tiers.tier_amounts`; null for the others). Without `tiered` every
    record is priced flat."""
    flat_whole = (pl.col("billed") // pl.col("_factor")) * pl.col("price_micros")
    flat_rest = (pl.col("billed") % pl.col("_factor")) * pl.col("price_micros")
    if tiered:
        whole = pl.when(pl.col("_by_tiers")).then(pl.col("_whole")).otherwise(flat_whole)
        rest = pl.when(pl.col("_by_tiers")).then(pl.col("_rest")).otherwise(flat_rest)
    else:
        whole, rest = flat_whole, flat_rest
    usage = rounded_div(whole.fill_null(0), rest.fill_null(0), pl.col("_factor"), rule)
    return frame.select(
        pl.when(pl.col("charged") > 0)
        .then(pl.max_horizontal(usage, pl.col("minimum_charge_micros").fill_null(0))
              + pl.col("connection_fee_micros").fill_null(0))
        .otherwise(0).cast(pl.Int64).alias("price_micros")).to_series()


# --- the same rules for one record (real-time charging prices one session at a time) ---------------
# Plain integers, no Polars: a charging request cannot afford a frame per call. They must agree with
# `billed_expr` and `price` exactly: tests/usage/test_pricing_scalar.py compares them on random input.

def billed_one(kind: str, charged: int, first: int | None, step: int | None, rounding_factor: int) -> int:
    """`billed_expr` for one record."""
    if kind == "voice":
        first = DEFAULT_FIRST_INCREMENT_S if first is None else first
        step = first if step is None else step
        if charged == 0:
            return 0
        return first + -(-max(charged - first, 0) // step) * step
    if kind == "data":
        return -(-charged // rounding_factor) * rounding_factor
    return charged


def price_one(charged: int, billed: int, price_micros: int, factor: int, minimum_micros: int | None,
              fee_micros: int | None, rule: str) -> int:
    """`price` for one flat-priced record: micro-units, rounded once by `rule`."""
    if charged <= 0:
        return 0
    whole, rest = (billed // factor) * price_micros, (billed % factor) * price_micros
    base, twice_rest = whole + rest // factor, 2 * (rest % factor)
    if RoundingRule(rule) == RoundingRule.HALF_UP:
        up = twice_rest >= factor
    else:
        up = twice_rest > factor or (twice_rest == factor and base % 2 == 1)
    return max(base + int(up), minimum_micros or 0) + (fee_micros or 0)
