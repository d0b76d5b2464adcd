"""Which rated records the money of prepaid accounts covers (issue 4 item 8), pure.

`cover_with_money(rated, balances)`: per account, records in chronological order (start, then
record_key) are covered while the cumulative `price_micros` stays within `available_micros`.
The first priced record that does not fit and every later priced record of the account are
`uncovered=True` (still rated: the real-time issue prevents such usage; no skipping ahead to a
cheaper record, so the debit order is the usage order). A record priced 0 is always covered.
Accounts without a row in `balances` are not checked (postpaid): `uncovered=False`.
The caller debits the covered records' prices with the pocket core (`services.spend`).
"""
from __future__ import annotations

import polars as pl


def cover_with_money(rated: pl.DataFrame, balances: pl.DataFrame) -> pl.DataFrame:
    """`rated` (a `Rated.rated` frame) plus `uncovered` (Boolean), in the input order.
    `balances`: account_id, available_micros (money in the rated currency, micro-units)."""
    money = balances.select(pl.col("account_id").cast(pl.Int64),
                            pl.col("available_micros").cast(pl.Int64)).group_by("account_id").agg(
        pl.col("available_micros").sum())
    frame = rated.with_row_index("_order")
    spent = pl.col("price_micros").cum_sum().over("account_id")
    checked = (frame.sort("account_id", "start", "record_key")
               .join(money, on="account_id", how="left", maintain_order="left")
               .with_columns((spent > pl.col("available_micros")).alias("_over")))
    flagged = checked.with_columns(
        (pl.col("available_micros").is_not_null() & (pl.col("price_micros") > 0)
         & (pl.col("_over").cast(pl.Int8).cum_max().over("account_id") == 1)).fill_null(False).alias("uncovered"))
    return flagged.sort("_order").drop("_order", "_over", "available_micros")
