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


def consume(demand: pl.DataFrame, allowances: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`demand`: _row, record_key, subscription_id, service, start, destination_group, quantity.
    Returns (`_row`, `included`) for every demand row and the takes (record_key, pocket_id, quantity)."""
    pockets = _ordered_pockets(allowances, demand)
    open_ = (demand.select("_row", "record_key", *_KEYS, "start", "destination_group",
                           pl.col("quantity").alias("_need"))
             .filter(pl.col("_need") > 0)
             .join(pockets.select(_KEYS).unique(), on=_KEYS, how="semi")
             .sort(*_KEYS, "start", "record_key"))
    takes = []
    rounds = pockets["_rank"].max() if pockets.height else 0
    for rank in range(1, (rounds or 0) + 1):
        if open_.height == 0:
            break
        pocket = pockets.filter(pl.col("_rank") == rank).drop("_rank")
        eligible = (open_.join(pocket, on=_KEYS, how="inner", maintain_order="left")
                    .filter((pl.col("valid_from").is_null() | (pl.col("start") >= pl.col("valid_from")))
                            & (pl.col("valid_until").is_null() | (pl.col("start") < pl.col("valid_until")))
                            & ((pl.col("destination_groups").list.len() == 0)
                               | pl.col("destination_groups").list.contains(pl.col("destination_group"))
                               .fill_null(False))))
        demand_after = pl.col("_need").cum_sum().over("pocket_id")
        taken = eligible.select(
            "_row", "record_key", "pocket_id",
            (pl.min_horizontal(demand_after, pl.col("remaining"))
             - pl.min_horizontal(demand_after - pl.col("_need"), pl.col("remaining"))).clip(0).alias("quantity"),
        ).filter(pl.col("quantity") > 0)
        takes.append(taken)
        open_ = (open_.join(taken.select("_row", pl.col("quantity").alias("_took")), on="_row", how="left",
                            maintain_order="left")
                 .with_columns((pl.col("_need") - pl.col("_took").fill_null(0)).alias("_need"))
                 .drop("_took").filter(pl.col("_need") > 0))
    all_takes = pl.concat([pl.DataFrame(schema={"_row": pl.UInt32, **TAKES}),
                           *[t.select(pl.col("_row").cast(pl.UInt32), *[pl.col(c).cast(d) for c, d in TAKES.items()])
                             for t in takes]])
    included = (demand.select("_row")
                .join(all_takes.group_by("_row").agg(pl.col("quantity").sum().alias("included")), on="_row",
                      how="left", maintain_order="left")
                .with_columns(pl.col("included").fill_null(0).cast(pl.Int64)))
    return included, all_takes.sort("_row", "pocket_id", maintain_order=True).select(list(TAKES))


def _ordered_pockets(allowances: pl.DataFrame, demand: pl.DataFrame) -> pl.DataFrame:
    usable = (allowances.select(
        pl.col("pocket_id").cast(pl.Int64), pl.col("subscription_id").cast(pl.Int64),
        pl.col("service").cast(pl.String), pl.col("remaining").cast(pl.Int64),
        pl.col("priority").cast(pl.Int64), pl.col("valid_from"), pl.col("valid_until"),
        pl.col("destination_groups").fill_null([]).cast(pl.List(pl.String)))
        .filter(pl.col("remaining") > 0)
        .join(demand.select(_KEYS).unique(), on=_KEYS, how="semi"))
    return (usable.with_columns((pl.col("destination_groups").list.len() == 0).alias("_unrestricted"))
            .sort(*_KEYS, "_unrestricted", "priority", "valid_until", "pocket_id", nulls_last=True)
            .with_columns(pl.int_range(1, pl.len() + 1).over(_KEYS).alias("_rank"))
            .drop("_unrestricted"))
