"""Consumption of included units (allowance pockets), exact and vectorised.

Rule (as the pocket core's `balances.engine.plan_spend` orders pockets): per subscription and
service, records are served in chronological order of start (ties by record_key); each record
takes from the pockets valid at its start (`valid_from <= start < valid_until`, an open end never
ends) whose destination groups are empty or contain the record's group, in the pocket order:
restricted pockets (with destination groups) first, then lower `priority`, then earliest
`valid_until` (open last), then `pocket_id`. A record takes as much as it still needs from a pocket
before going to the next; what no pocket covers is charged. Quantities are storage units
(seconds, bytes, events): a 1200 s call with 300 s left takes 300 s and charges 900 s exactly.

Vectorised by rounds: because the pocket order is one total order per subscription and service,
the k-th pocket of every subscription is consumed in round k by the records (in chronological
order) still needing units after rounds 1..k-1; within a round a pocket's takes are the overlap
of the records' cumulative demand with its remaining balance. Rounds = the most pockets one
subscription has for one service; no per-record loop.
"""
from __future__ import annotations

import polars as pl

TAKES = {"record_key": pl.String, "pocket_id": pl.Int64, "quantity": pl.Int64}
_KEYS = ["subscription_id", "service"]
_POCKET = ["pocket_id", "remaining", "valid_from", "valid_until", "destination_groups", "_restricted"]


def consume(demand: pl.DataFrame, allowances: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """`demand`: _row, record_key, subscription_id, service, start, destination_group, quantity, in
    chronological order (start, then record_key). Returns `included` (one value per demand row, in
    its order) and the takes (record_key, pocket_id, quantity), ordered by _row then pocket."""
    pockets = _ordered_pockets(allowances, demand)
    rounds = int(pockets["_rank"].max() or 0) if pockets.height else 0
    if rounds == 0:
        return pl.Series("included", [0] * demand.height, dtype=pl.Int64), pl.DataFrame(schema=TAKES)
    work = demand.select("_row", "record_key", *_KEYS, "start", "destination_group",
                         pl.col("quantity").alias("_need"))
    takes = []
    for rank in range(1, rounds + 1):
        pocket = pockets.filter(pl.col("_rank") == rank).select(*_KEYS, *_POCKET)
        # every record meets the rank-th pocket of its subscription and service (if any); those not
        # eligible need 0 from it, so the running sum of need per pocket is the chronological demand
        joined = work.join(pocket, on=_KEYS, how="left", maintain_order="left")
        eligible = (pl.col("pocket_id").is_not_null() & (pl.col("_need") > 0)
                    & (pl.col("valid_from").is_null() | (pl.col("start") >= pl.col("valid_from")))
                    & (pl.col("valid_until").is_null() | (pl.col("start") < pl.col("valid_until"))))
        if pockets["_restricted"].any():
            eligible = eligible & (~pl.col("_restricted").fill_null(False)
                                   | pl.col("destination_groups").list.contains(pl.col("destination_group"))
                                   .fill_null(False))
        joined = joined.with_columns(pl.when(eligible).then(pl.col("_need")).otherwise(0).alias("_wants"))
        joined = joined.with_columns(pl.col("_wants").cum_sum().over("pocket_id").alias("_after"))
        take = (pl.min_horizontal(pl.col("_after"), pl.col("remaining"))
                - pl.min_horizontal(pl.col("_after") - pl.col("_wants"), pl.col("remaining"))).clip(0).fill_null(0)
        joined = joined.with_columns(take.alias("_take"))
        takes.append(joined.filter(pl.col("_take") > 0).select("_row", "record_key", "pocket_id",
                                                               pl.col("_take").alias("quantity")))
        work = joined.select(*work.columns[:-1], (pl.col("_need") - pl.col("_take")).alias("_need"))
    included = (demand["quantity"] - work["_need"]).alias("included")
    all_takes = pl.concat([pl.DataFrame(schema={"_row": pl.UInt32, **TAKES}),
                           *[t.select(pl.col("_row").cast(pl.UInt32), *[pl.col(c).cast(d) for c, d in TAKES.items()])
                             for t in takes]])
    return included, all_takes.sort("_row", "pocket_id", maintain_order=True).select(list(TAKES))


def _ordered_pockets(allowances: pl.DataFrame, demand: pl.DataFrame) -> pl.DataFrame:
    usable = (allowances.select(
        pl.col("pocket_id").cast(pl.Int64), pl.col("subscription_id").cast(pl.Int64),
        pl.col("service").cast(pl.String), pl.col("remaining").cast(pl.Int64),
        pl.col("priority").cast(pl.Int64), pl.col("valid_from").cast(pl.Datetime("us", "UTC")),
        pl.col("valid_until").cast(pl.Datetime("us", "UTC")),
        pl.col("destination_groups").fill_null([]).cast(pl.List(pl.String)))
        .filter(pl.col("remaining") > 0))
    return (usable.with_columns((pl.col("destination_groups").list.len() > 0).alias("_restricted"))
            .sort(*_KEYS, "_restricted", "priority", "valid_until", "pocket_id", nulls_last=True,
                  descending=[False, False, True, False, False, False])
            .with_row_index("_at")
            # rank within the (sorted) subscription and service: rows since the group's first row
            .with_columns(pl.when((pl.col("subscription_id") != pl.col("subscription_id").shift())
                                  | (pl.col("service") != pl.col("service").shift())
                                  | (pl.col("_at") == 0)).then(pl.col("_at")).forward_fill().alias("_first"))
            .with_columns((pl.col("_at") - pl.col("_first") + 1).cast(pl.Int64).alias("_rank"))
            .drop("_at", "_first"))
