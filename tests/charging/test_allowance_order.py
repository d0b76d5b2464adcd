"""Real-time charging takes allowance pockets in the order batch rating does (allowances.consume): a
pocket restricted to destination groups before an unrestricted one, then priority, expiry, id."""
from datetime import datetime, timezone

import polars as pl

from obol.balances.engine import AccountState, PocketState
from obol.charging import grants
from obol.usage.rating.allowances import consume
from obol.usage.rating.single import Terms

AT = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
TERMS = Terms(rate_table="t", currency="EUR", kind="voice", tariff_version_id=1, destination_group="national-mobile",
              time_band="peak", price_micros=100_000, first_increment_s=60, next_increment_s=60,
              minimum_charge_micros=0, connection_fee_micros=0, factor=60, rounding_factor=1, tiered=False)


def test_same_pocket_order_as_batch():
    # pocket 1: any destination, priority 50; pocket 2: mobile only, priority 100; 60 s each
    pockets = [PocketState(1, "second", 60, priority=50, services=("voice",)),
               PocketState(2, "second", 60, priority=100, services=("voice",), destination_groups=("national-mobile",))]
    funds = grants.Funds(AccountState(mode="postpaid", currency="EUR"), tuple(pockets), ())
    real_time = grants.cost(TERMS, 60, funds, at=AT, service="voice", rule="half_up")
    allowances = pl.DataFrame({"pocket_id": [1, 2], "subscription_id": [7, 7], "service": ["voice", "voice"],
                               "remaining": [60, 60], "priority": [50, 100], "valid_from": [None, None],
                               "valid_until": [None, None], "destination_groups": [[], ["national-mobile"]]},
                              schema_overrides={"valid_from": pl.Datetime("us", "UTC"),
                                                "valid_until": pl.Datetime("us", "UTC")})
    demand = pl.DataFrame({"subscription_id": [7], "service": ["voice"], "start": [AT], "_g": [0], "quantity": [60]})
    _, takes = consume(demand, allowances, ["national-mobile"])
    assert [t.pocket_id for t in real_time.takes] == takes["pocket_id"].to_list()
