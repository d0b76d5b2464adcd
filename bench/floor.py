"""The floor: how long the least vectorised work that any batch CDR rating must do takes on this
machine, step by step, with Polars alone (no database, no allowances, no bands, no booking).

    python bench/floor.py CSV [--runs 2] [--out DIR]      # CSV: bench/stages.py files --records N

Steps a-i (read with a schema, parse times, hash keys, join 400,000 subscribers, longest prefix of
50,000, flat price, sort and running sum per subscription, write Parquet, aggregate), each timed
on its own (eager), best of --runs; then b-f as one lazy collect and a lazy/streaming
scan_csv -> sink_parquet. Prefixes are those of bench/generate.py. One JSON line at the end.
docs/usage-performance.md quotes its figures: even this skeleton does not reach the issue's goal.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import polars as pl

SUBSCRIBERS = 400_000
PREFIXES = 50_000
GROUPS = ["national-fixed", "national-mobile", "eu", "world", "premium"]
MSISDN_BASE = 491_510_000_000
T0 = __import__("datetime").datetime(2026, 3, 1, tzinfo=__import__("datetime").UTC)  # lazy: known batch start
SERVICE = pl.Enum(["voice", "sms", "data"])
SCHEMA = {"id": pl.Int64, "msisdn": pl.Int64, "service": SERVICE, "destination": pl.String,
          "start": pl.String, "duration": pl.Int64, "volume": pl.Int64}
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# minimal tariff: per-group voice rate per started minute (micros), SMS fixed, data per started MB
VOICE_RATE = [90_000, 100_000, 110_000, 120_000, 130_000]
SMS_PRICE = 90_000
DATA_RATE_MB = 10_000


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random(n: int, low: int, high: int, seed: int) -> pl.Series:
    return (pl.int_range(0, n, eager=True).hash(seed) % (high - low)).cast(pl.Int64) + low


def prefix_list() -> list[str]:  # == bench/generate.py tariffs()[1]
    digits = random(PREFIXES * 2, 10 ** 4, 10 ** 7, 1).cast(pl.String).unique(maintain_order=True)
    return [p for p in digits.to_list() if len(p) > 1][:PREFIXES - 9] + [str(i) for i in range(1, 10)]


def reference_frames():
    prefixes = prefix_list()
    pfx = pl.DataFrame({"prefix": prefixes}).with_columns(
        length=pl.col("prefix").str.len_chars().cast(pl.Int32),
        value=pl.col("prefix").cast(pl.Int64),
        group=(pl.col("prefix").str.slice(-1).cast(pl.Int64) % len(GROUPS)).cast(pl.UInt8))
    lengths = sorted(pfx["length"].unique().to_list(), reverse=True)  # longest first
    by_len = {L: pfx.filter(pl.col("length") == L).select(pl.col("value").alias(f"p{L}"),
                                                          pl.col("group").alias(f"g{L}")) for L in lengths}
    ids = pl.int_range(1, SUBSCRIBERS + 1, eager=True, dtype=pl.Int64)
    subs = pl.DataFrame({"msisdn": ids + MSISDN_BASE, "subscription_id": ids, "account_id": ids + 1_000_000})
    rates = pl.DataFrame({"group": pl.Series(range(len(GROUPS)), dtype=pl.UInt8),
                          "voice_rate": pl.Series(VOICE_RATE, dtype=pl.Int64)})
    return pfx, lengths, by_len, subs, rates


# ---- e. longest-prefix match, three ways -------------------------------------------------------------
def lpm_str_join(df: pl.DataFrame, lengths, by_len) -> pl.DataFrame:
    """slice the first L chars, cast to int, left-join against that length's prefixes; coalesce longest first."""
    df = df.with_columns([pl.col("destination").str.slice(0, L).cast(pl.Int64, strict=False).alias(f"p{L}")
                          for L in lengths])
    for L in lengths:
        df = df.join(by_len[L], on=f"p{L}", how="left")
    return df.with_columns(group=pl.coalesce([f"g{L}" for L in lengths])).drop(
        [f"p{L}" for L in lengths] + [f"g{L}" for L in lengths])


def _candidates(lengths):
    """prefix of length L as integer arithmetic on the destination as Int64 (no string slicing)."""
    d = pl.col("destination").cast(pl.Int64, strict=False)
    nd = pl.col("destination").str.len_bytes().cast(pl.Int64)
    return [pl.when(nd >= L).then(d // pl.lit(10, pl.Int64).pow(nd - L)).alias(f"p{L}") for L in lengths]


def lpm_int_replace(df: pl.DataFrame, lengths, by_len) -> pl.DataFrame:
    """integer candidates, then hash lookups with replace_strict (no join), coalesce longest first."""
    exprs = []
    for L, c in zip(lengths, _candidates(lengths)):
        t = by_len[L]
        exprs.append(c.replace_strict(t[f"p{L}"], t[f"g{L}"], default=None, return_dtype=pl.UInt8))
    return df.with_columns(group=pl.coalesce(exprs))


def lpm_str_replace(df: pl.DataFrame, lengths, by_len) -> pl.DataFrame:
    """string slice + cast, then replace_strict hash lookups."""
    exprs = []
    for L in lengths:
        t = by_len[L]
        exprs.append(pl.col("destination").str.slice(0, L).cast(pl.Int64, strict=False)
                     .replace_strict(t[f"p{L}"], t[f"g{L}"], default=None, return_dtype=pl.UInt8))
    return df.with_columns(group=pl.coalesce(exprs))


def lpm_int_join(df: pl.DataFrame, lengths, by_len) -> pl.DataFrame:
    df = df.with_columns(_candidates(lengths))
    for L in lengths:
        df = df.join(by_len[L], on=f"p{L}", how="left")
    return df.with_columns(group=pl.coalesce([f"g{L}" for L in lengths])).drop(
        [f"p{L}" for L in lengths] + [f"g{L}" for L in lengths])


LPM = {"str_slice+4 joins": lpm_str_join, "int_arith+4 joins": lpm_int_join,
       "str_slice+replace_strict": lpm_str_replace, "int_arith+replace_strict": lpm_int_replace}


# ---- f. price -------------------------------------------------------------------------------------------
def price_exprs():
    svc = pl.col("service")
    quantity = (pl.when(svc == "voice").then(pl.col("duration"))
                .when(svc == "data").then(pl.col("volume")).otherwise(1)).alias("quantity")
    price = (pl.when(svc == "voice").then((pl.col("duration") + 59) // 60 * pl.col("voice_rate"))
             .when(svc == "data").then((pl.col("volume") + 999_999) // 1_000_000 * DATA_RATE_MB)
             .otherwise(SMS_PRICE)).alias("price")
    return quantity, price


def packed_key(t0) -> pl.Expr:
    """(subscription_id, service, start) in one UInt64: sub < 2^19, service < 4, start - t0 < 2^42 us (50 days)."""
    return ((pl.col("subscription_id").cast(pl.UInt64) * (1 << 44))
            + (pl.col("service").to_physical().cast(pl.UInt64) * (1 << 42))
            + (pl.col("start") - pl.lit(t0)).dt.total_microseconds().cast(pl.UInt64))


def contiguous_cum_sum(col: str, keys: list[str]) -> pl.Expr:
    """cum_sum restarting at each group on a frame sorted by keys: global cum_sum minus the running
    total at the group's first row (forward-filled), no window/hash grouping."""
    q = pl.col(col)
    cs = q.cum_sum()
    new = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    return cs - pl.when(new).then(cs - q).forward_fill()


OUT_COLS = ["key", "subscription_id", "account_id", "start", "service", "quantity", "group", "price", "consumed"]


def eager_run(csv: Path, out: Path, lpm_name: str, refs, all_lpm: bool) -> tuple[dict, dict]:
    pfx, lengths, by_len, subs, rates = refs
    t: dict[str, float] = {}
    info: dict = {}

    def lap(name):
        nonlocal last
        now = time.perf_counter()
        t[name] = now - last
        last = now

    last = time.perf_counter()
    df = pl.read_csv(csv, schema=SCHEMA)
    lap("a read_csv (explicit schema)")
    df = df.with_columns(pl.col("start").str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC"))
    lap("b parse start -> Datetime(us,UTC)")
    df = df.with_columns(key=pl.col("id").hash())
    lap("c key = hash(id) -> UInt64")
    if all_lpm:
        df.join(subs, on="msisdn", how="inner")
        lap("d alt: inner join 400k")
    df = df.join(subs, on="msisdn", how="left").drop_nulls("subscription_id")
    lap("d msisdn -> subscription (left join 400k + drop_nulls)")
    if all_lpm:
        for name, fn in LPM.items():
            last = time.perf_counter()
            r = fn(df, lengths, by_len)
            lap(f"e LPM [{name}]")
            info[f"lpm_nulls[{name}]"] = r["group"].null_count()
            info[f"lpm_hash[{name}]"] = int(r.select(pl.col("group").fill_null(255).cast(pl.Int64)
                                                     .hash().sum()).item())
        last = time.perf_counter()
    df = LPM[lpm_name](df, lengths, by_len)
    lap("e longest-prefix match (chosen)")
    quantity, price = price_exprs()
    df = df.join(rates, on="group", how="left").with_columns(quantity, price)
    lap("f price (5-row join + int exprs)")
    if all_lpm:
        df.sort("subscription_id", "start")
        lap("g1 alt: sort (subscription_id, start)")
    if all_lpm:  # the slow generic forms, measured once (on the unsorted frame)
        df.with_columns(consumed=pl.col("quantity").cum_sum().over("subscription_id", "service"))
        lap("g2 alt: cum_sum().over(sub, service) [window]")
        df.with_columns(consumed=pl.col("quantity").cum_sum().over("subscription_id"))
        lap("g2 alt: cum_sum().over(sub) [window]")
        last = time.perf_counter()
    if all_lpm:
        df.sort("subscription_id", "service", "start")
        lap("g1 alt: multi-key sort (sub, service:Enum, start)")
    df = df.sort(packed_key(df["start"].min())).drop("_k", strict=False)
    lap("g1 sort by packed UInt64 (sub, service, start)")
    df = df.with_columns(consumed=contiguous_cum_sum("quantity", ["subscription_id", "service"]))
    lap("g2 segmented cum_sum (contiguous groups)")
    if all_lpm:
        info["segmented_cum_sum_equals_window"] = df.select(
            (pl.col("consumed") == pl.col("quantity").cum_sum().over("subscription_id", "service")).all()).item()
        last = time.perf_counter()
    rated = df.select(OUT_COLS)
    lap("  select 9 output columns")
    for comp in ("uncompressed", "lz4", "zstd"):
        p = out / f"rated-{comp}.parquet"
        rated.write_parquet(p, compression=comp)
        lap(f"h write parquet {comp}")
        info[f"parquet_mib_{comp}"] = round(p.stat().st_size / 2 ** 20)
    agg = rated.group_by("subscription_id", "service", "group").agg(pl.col("price").sum(), pl.col("quantity").sum())
    lap("i aggregate (sub, service, group)")
    info.update(rows=rated.height, agg_rows=agg.height, total_price=int(rated["price"].sum()),
                group_nulls=rated["group"].null_count())
    return t, info


def lazy_bf(csv: Path, lengths, by_len, subs, rates, lpm: str) -> tuple[float, int]:
    """b-f as one LazyFrame collect on an already-read frame (compare with the eager b..f sum)."""
    df = pl.read_csv(csv, schema=SCHEMA)
    began = time.perf_counter()
    quantity, price = price_exprs()
    lf = df.lazy().with_columns(pl.col("start").str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC"),
                                key=pl.col("id").hash()).join(subs.lazy(), on="msisdn", how="left").drop_nulls("subscription_id")
    lf = lazy_lpm(lf, lengths, by_len, lpm)
    res = lf.join(rates.lazy(), on="group", how="left").with_columns(quantity, price).collect()
    return time.perf_counter() - began, res.height


def lazy_lpm(lf, lengths, by_len, lpm):
    if "replace" in lpm:
        exprs = []
        cands = _candidates(lengths) if lpm.startswith("int") else [
            pl.col("destination").str.slice(0, L).cast(pl.Int64, strict=False) for L in lengths]
        for L, c in zip(lengths, cands):
            t = by_len[L]
            exprs.append(c.replace_strict(t[f"p{L}"], t[f"g{L}"], default=None, return_dtype=pl.UInt8))
        return lf.with_columns(group=pl.coalesce(exprs))
    cands = _candidates(lengths) if lpm.startswith("int") else [
        pl.col("destination").str.slice(0, L).cast(pl.Int64, strict=False).alias(f"p{L}") for L in lengths]
    lf = lf.with_columns(cands)
    for L in lengths:
        lf = lf.join(by_len[L].lazy(), on=f"p{L}", how="left")
    return lf.with_columns(group=pl.coalesce([f"g{L}" for L in lengths])).drop(
        [f"p{L}" for L in lengths] + [f"g{L}" for L in lengths])


def lazy_end_to_end(csv: Path, out: Path, lengths, by_len, subs, rates, lpm: str, engine: str) -> float:
    """scan_csv -> b..g -> write zstd parquet, one query (sort forces a full materialisation anyway)."""
    began = time.perf_counter()
    quantity, price = price_exprs()
    lf = pl.scan_csv(csv, schema=SCHEMA).with_columns(
        pl.col("start").str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC"),
        key=pl.col("id").hash()).join(subs.lazy(), on="msisdn", how="left").drop_nulls("subscription_id")
    lf = lazy_lpm(lf, lengths, by_len, lpm)
    lf = (lf.join(rates.lazy(), on="group", how="left").with_columns(quantity, price)
          .sort(packed_key(T0))
          .with_columns(consumed=contiguous_cum_sum("quantity", ["subscription_id", "service"]))
          .select(OUT_COLS))
    lf.collect(engine=engine).write_parquet(out / "rated-lazy.parquet", compression="lz4")
    return time.perf_counter() - began


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "var" / "bench" / "floor"))
    ap.add_argument("--lpm", default=None, help="LPM method to use (default: fastest of the first run)")
    args = ap.parse_args()
    csv, out = Path(args.csv), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    refs = reference_frames()
    pfx, lengths, by_len, subs, rates = refs
    rss0 = rss_mib()
    best: dict[str, float] = {}
    info = {}
    lpm = args.lpm or "int_arith+replace_strict"
    for run in range(args.runs):
        t, i = eager_run(csv, out, lpm, refs, all_lpm=(run == 0))
        info.update(i)
        if run == 0 and not args.lpm:
            lpm = min((k for k in t if k.startswith("e LPM")), key=t.get)[7:-1]
        for k, v in t.items():
            best[k] = min(best.get(k, v), v)
    rss_eager = rss_mib()
    lz = min(lazy_bf(csv, lengths, by_len, subs, rates, lpm)[0] for _ in range(args.runs))
    e2e = {eng: min(lazy_end_to_end(csv, out, lengths, by_len, subs, rates, lpm, eng) for _ in range(args.runs))
           for eng in ("in-memory", "streaming")}
    steps = [k for k in best if not k.startswith(("e LPM", "g2 alt", "g1 alt"))]
    print(json.dumps({
        "csv": str(csv), "polars": pl.__version__, "threads": pl.thread_pool_size(), "lpm_chosen": lpm,
        "prefix_lengths": lengths, "best_seconds": {k: round(v, 3) for k, v in best.items()},
        "total_eager_a_to_i_with_zstd": round(sum(best[k] for k in steps if not k.startswith("h write parquet")
                                                  or k.endswith("zstd")), 3),
        "total_eager_a_to_h_with_lz4": round(sum(best[k] for k in steps if not k.startswith("i ") and (
            not k.startswith("h write parquet") or k.endswith("lz4"))), 3),
        "eager_b_to_f": round(sum(best[k] for k in steps if k[0] in "bcdef"), 3),
        "lazy_b_to_f_one_collect": round(lz, 3),
        "lazy_end_to_end_scan_to_lz4_parquet": {k: round(v, 3) for k, v in e2e.items()},
        "rss_after_setup_mib": round(rss0), "rss_peak_eager_mib": round(rss_eager),
        "rss_peak_mib": round(rss_mib()), "info": info, "loadavg": os.getloadavg(),
    }, indent=1))


if __name__ == "__main__":
    main()
