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
_KEYS = ["subscription_id", "_svc"]
_POCKET = ["pocket_id", "remaining", "valid_from", "valid_until", "destination_groups", "_restricted"]


def consume(demand: pl.DataFrame, allowances: pl.DataFrame, groups: list[str]) -> tuple[pl.Series, pl.DataFrame]:
    """`demand`: subscription_id, service, start, _g (the destination group's index in `groups`),
    quantity, in chronological order (start, then record_key). Returns `included` (one value per
    demand row, in its order) and the takes (_at: the demand row, pocket_id, quantity)."""
    n = demand.height
    pockets = _ordered_pockets(allowances)
    no_takes = pl.DataFrame(schema={"_at": pl.UInt32, "pocket_id": pl.Int64, "quantity": pl.Int64})
    if pockets.height == 0 or n == 0:
        return pl.repeat(0, n, dtype=pl.Int64, eager=True).alias("included"), no_takes
    # the service as a small integer (the pockets' services; others have no pocket)
    services = pockets["service"].unique(maintain_order=True).to_list()
    pockets = pockets.with_columns(_service_code(pl.col("service"), services))
    restricted = bool(pockets["_restricted"].any())
    bounded = bool(pockets["valid_from"].is_not_null().any() or pockets["valid_until"].is_not_null().any())
    # only records that can meet a pocket (their subscription and service has one) and need units;
    # start and group only when some pocket has a validity bound or destination groups
    work = (demand.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_at"), "subscription_id",
                          _service_code(pl.col("service"), services), *(["start"] if bounded else []),
                          *(["_g"] if restricted else []), pl.col("quantity").alias("_need"))
            .filter(pl.col("_svc").is_not_null() & (pl.col("_need") > 0)))
    ids = pl.concat([work["subscription_id"], pockets["subscription_id"]])
    keys = _KEYS
    if ids.null_count() == 0 and (ids.min() or 0) >= 0 and (ids.max() or 0) < (1 << 62) // (len(services) + 1):
        keys = ["_key"]  # one integer join key
        single = (pl.col("subscription_id") * len(services) + pl.col("_svc")).alias("_key")
        work = work.with_columns(single).drop("subscription_id", "_svc")
        pockets = pockets.with_columns(single)
    quantity = demand["quantity"]
    included = quantity * 0  # (null for a null quantity, as quantity - need)
    takes = []
    for rank in range(1, int(pockets["_rank"].max()) + 1):
        if work.height == 0:
            break
        pocket = pockets.filter(pl.col("_rank") == rank).with_row_index("_p")

        def of_pocket(name: str) -> pl.Expr:
            return pl.lit(pocket[name]).gather(pl.col("_p"))

        # every record meets the rank-th pocket of its subscription and service (if any; a record
        # without one has no later pocket either); those not eligible need 0 from it, so the running
        # sum of need per pocket is the chronological demand
        joined = work.join(pocket.select(*keys, "_p"), on=keys, how="inner", maintain_order="left")
        if rank == 1:
            # grouped by pocket, chronological within (_at): each pocket's records are one run and
            # its running sum a cumulative sum; later rounds keep this order (a subscription and
            # service has one pocket per rank)
            joined = _by_pocket(joined, n)
        eligible = pl.lit(True)
        if bounded:
            eligible = ((of_pocket("valid_from").is_null() | (pl.col("start") >= of_pocket("valid_from")))
                        & (of_pocket("valid_until").is_null() | (pl.col("start") < of_pocket("valid_until"))))
        if restricted:
            group = pl.lit(pl.Series(groups, dtype=pl.String)).gather(pl.col("_g"))
            eligible = eligible & (~of_pocket("_restricted")
                                   | of_pocket("destination_groups").list.contains(group).fill_null(False))
        joined = joined.with_columns(pl.when(eligible).then(pl.col("_need")).otherwise(0).alias("_wants"))
        total = pl.col("_wants").cum_sum()
        first = pl.col("_p").ne_missing(pl.col("_p").shift())
        joined = joined.with_columns(
            (total - pl.when(first).then(total - pl.col("_wants")).forward_fill()).alias("_after"))
        remaining = of_pocket("remaining")
        take = (pl.min_horizontal(pl.col("_after"), remaining)
                - pl.min_horizontal(pl.col("_after") - pl.col("_wants"), remaining)).clip(0).fill_null(0)
        joined = joined.with_columns(take.alias("_take")).with_columns((pl.col("_need") - pl.col("_take")).alias("_left"))
        takes.append(joined.filter(pl.col("_take") > 0).select("_at", of_pocket("pocket_id"),
                                                               pl.col("_take").alias("quantity")))
        at = joined["_at"]
        included = included.scatter(at, quantity.gather(at) - joined["_left"])
        work = (joined.select(*[c for c in work.columns if c != "_need"], pl.col("_left").alias("_need"))
                .filter(pl.col("_need") > 0))
    all_takes = pl.concat([no_takes, *[t.select(pl.col("_at").cast(pl.UInt32), pl.col("pocket_id").cast(pl.Int64),
                                                pl.col("quantity").cast(pl.Int64)) for t in takes]])
    # by record, then pocket; a round takes at most once per record, so one round is ordered by _at
    all_takes = all_takes.sort("_at", "pocket_id") if len(takes) > 1 else all_takes[all_takes["_at"].arg_sort()]
    return included.alias("included"), all_takes


def _service_code(service: pl.Expr, services: list[str]) -> pl.Expr:
    """The index of `service` in `services` (null: none): comparisons for a few, a lookup for many."""
    if len(services) > 8:
        return service.replace_strict({s: i for i, s in enumerate(services)}, default=None,
                                      return_dtype=pl.Int64).alias("_svc")
    code = pl.lit(None, pl.Int64)
    for i, name in reversed(list(enumerate(services))):
        code = pl.when(service == name).then(pl.lit(i, pl.Int64)).otherwise(code)
    return code.alias("_svc")


def _by_pocket(joined: pl.DataFrame, n: int) -> pl.DataFrame:
    """`joined` ordered by pocket (_p, its row in the round's pockets), then _at (its chronological
    position): one sort of unique integer keys."""
    if joined.height == 0:
        return joined
    return joined[(joined["_p"].cast(pl.Int64) * n + joined["_at"].cast(pl.Int64)).arg_sort()]


def _ordered_pockets(allowances: pl.DataFrame) -> pl.DataFrame:
    usable = (allowances.select(
        pl.col("pocket_id").cast(pl.Int64), pl.col("subscription_id").cast(pl.Int64),
        pl.col("service").cast(pl.String), pl.col("remaining").cast(pl.Int64),
        pl.col("priority").cast(pl.Int64), pl.col("valid_from").cast(pl.Datetime("us", "UTC")),
        pl.col("valid_until").cast(pl.Datetime("us", "UTC")),
        pl.col("destination_groups").fill_null([]).cast(pl.List(pl.String)))
        .filter(pl.col("remaining") > 0))
    return (usable.with_columns((pl.col("destination_groups").list.len() > 0).alias("_restricted"))
            .sort("subscription_id", "service", "_restricted", "priority", "valid_until", "pocket_id", nulls_last=True,
                  descending=[False, False, True, False, False, False])
            .with_row_index("_at")
            # rank within the (sorted) subscription and service: rows since the group's first row
            .with_columns(pl.when((pl.col("subscription_id") != pl.col("subscription_id").shift())
                                  | (pl.col("service") != pl.col("service").shift())
                                  | (pl.col("_at") == 0)).then(pl.col("_at")).forward_fill().alias("_first"))
            .with_columns((pl.col("_at") - pl.col("_first") + 1).cast(pl.Int64).alias("_rank"))
            .drop("_at", "_first"))
