"""Mediation: map imported records onto subscriptions, services and rate tables, vectorised.

`mediate(records, lookups)` is pure (frames in, frames out). Each record is matched to the
subscription whose usage identifier was valid at the record's start, that subscription's state
and plan at that moment, and the plan version's usage charge for the record's service. What
cannot be mapped goes to the suspense frame with a reason:

| reason | when |
|---|---|
| `unknown_identifier` | no subscription held the identifier at the record's start |
| `subscription_not_active` | the subscription was pending, suspended or terminated then |
| `no_usage_charge` | the plan (version in force) has no usage charge for the record's service |
| `duplicate` | the record key was rated before, or appears twice in the batch (the first is kept) |

`load_lookups()` reads what mediation needs from the database in a handful of queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

import polars as pl

from obol.catalog.models import Charge, PricePlanVersion
from obol.core.tenancy import current_tenant
from obol.customers.models import BillingAccount
from obol.subscriptions.models import SubscriptionChange, UsageIdentifier

TS = pl.Datetime("us", "UTC")
# The parsed record kept with a suspended one, so `obol usage recycle` needs no file.
RECORD_FIELDS = ["source", "file", "line", "record_key", "service", "identifier_kind", "identifier", "destination",
                 "start", "duration_s", "volume_bytes", "events", "raw"]


@dataclass(frozen=True)
class Lookups:
    """identifiers: kind, value, valid_from, valid_to, subscription_id
    states: subscription_id, account_id, plan_id, status, state_from (a subscription's timeline)
    charges: plan_id, version_from, service_kind, service, rate_table (usage charges by version)
    accounts: account_id, account_currency, mode, bill_cycle_day"""

    identifiers: pl.DataFrame
    states: pl.DataFrame
    charges: pl.DataFrame
    accounts: pl.DataFrame
    versions: pl.DataFrame | None = None  # plan_id, version_from of every plan version


def _midnight(day, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def load_lookups(value: str | None = None) -> Lookups:
    """The tenant's identifiers, subscription timelines, usage charges and accounts as frames;
    with `value`, only what a record of that identifier value can map to (real-time charging)."""
    zone = ZoneInfo(current_tenant().timezone)
    held = UsageIdentifier.objects.all() if value is None else UsageIdentifier.objects.filter(value=value)
    identifiers = pl.DataFrame(
        list(held.values_list("kind", "value", "valid_from", "valid_to", "subscription_id")),
        schema={"kind": pl.Utf8, "value": pl.Utf8, "valid_from": TS, "valid_to": TS, "subscription_id": pl.Int64},
        orient="row",
    )
    changes = SubscriptionChange.objects.all()
    accounts = BillingAccount.objects.all()
    if value is not None:
        subscriptions = set(identifiers["subscription_id"].to_list())
        changes = changes.filter(subscription_id__in=subscriptions)
        accounts = accounts.filter(subscriptions__in=subscriptions).distinct()
    changes = changes.order_by("subscription_id", "seq").values_list(
        "subscription_id", "subscription__account_id", "plan_id", "status", "effective_date", "seq")
    # Several changes on one day: the last (highest seq) is the state of that day.
    states = pl.DataFrame(
        [(s, a, p, st, _midnight(d, zone), seq) for s, a, p, st, d, seq in changes],
        schema={"subscription_id": pl.Int64, "account_id": pl.Int64, "plan_id": pl.Int64, "status": pl.Utf8,
                "state_from": TS, "seq": pl.Int64},
        orient="row",
    ).sort("subscription_id", "state_from", "seq").unique(["subscription_id", "state_from"], keep="last",
                                                          maintain_order=True).drop("seq")
    versions = {v.pk: (v.plan_id, _midnight(v.effective_from, zone)) for v in PricePlanVersion.objects.all()}
    all_versions = pl.DataFrame(list(versions.values()), orient="row",
                                schema={"plan_id": pl.Int64, "version_from": TS})
    usage = Charge.objects.filter(kind=Charge.Kind.USAGE, service__isnull=False).order_by("version_id", "position")
    charges = pl.DataFrame(
        [(*versions[v], kind, code, table)
         for v, kind, code, table in usage.values_list("version_id", "service__kind", "service__code", "rate_table")],
        schema={"plan_id": pl.Int64, "version_from": TS, "service_kind": pl.Utf8, "service": pl.Utf8,
                "rate_table": pl.Utf8},
        orient="row",
    )
    accounts = pl.DataFrame(
        list(accounts.values_list("pk", "currency", "mode", "bill_cycle_day")),
        schema={"account_id": pl.Int64, "account_currency": pl.Utf8, "mode": pl.Utf8, "bill_cycle_day": pl.Int64},
        orient="row",
    )
    return Lookups(identifiers, states, charges, accounts, all_versions)


def _suspend(frame: pl.DataFrame, reason: str, field: str, message: pl.Expr) -> pl.DataFrame:
    return frame.select(
        "record_key", "line", pl.lit(reason).alias("reason"), pl.lit(field).alias("field"),
        message.alias("message"), "raw", pl.struct(RECORD_FIELDS).alias("record"),
    )


def mediate(records: pl.DataFrame, lookups: Lookups,
            known_keys: set[str] | frozenset | list | pl.Series | pl.DataFrame | None = frozenset()
            ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(mediated records, suspense). Mediated rows gain subscription_id, account_id, plan_id,
    service (the catalog's service code), service_kind, rate_table, account_currency, mode and quantity.

    `known_keys`: the record keys rated before: a set or list of strings, a string Series, or a
    frame with a record_key column. Mediated records and the suspended for `subscription_not_active`
    and `no_usage_charge` are in the order the records came in if that is by start (the mass
    process sorts by start and record_key, and `rate` wants that order), else stably by start;
    duplicates and unknown identifiers in the order they came. `raw` is passed through, never read.

    How: what a record maps to depends on its start only through comparisons with a few instants
    (identifier validity, subscription changes, plan versions). So the old per-record logic (the
    identifier's holder, then the subscription's state as of then, then the plan version as of
    then, then the version's usage charge for the service) is evaluated on the small tables, once
    per identifier and such instant within the records' time span (a segment), and per (segment,
    service kind) gives the outcome: a row of output columns or a reason. Each record then costs
    one join of its identifier string against the distinct identifiers and a few integer gathers;
    the records are neither joined nor sorted, and copied only if some are left out or they are
    not in time order."""
    n = records.height
    keep = _new_and_first(records["record_key"], known_keys)
    start = records["start"].cast(TS)
    mapping = _Mapping(lookups, start)
    outcome = mapping.outcomes(records, start)
    ordered = start.is_sorted()
    if keep is None and (n == 0 or outcome.min() >= 0):  # the usual case: everything maps
        suspense = [_suspend(records.clear(), reason, field, pl.lit("")) for reason, field in _REASONS]
        return mapping.output(records, outcome, ordered), pl.concat(suspense, how="vertical_relaxed")
    if keep is None:
        keep = pl.repeat(True, n, eager=True, dtype=pl.Boolean)

    def rows_of(mask: pl.Series, by_start: bool) -> pl.Series:
        """Row numbers where mask holds, in input order or (by_start) stably by start."""
        rows = mask.arg_true()
        if by_start and not ordered:
            rows = pl.DataFrame({"start": start.gather(rows), "row": rows}).sort(
                "start", maintain_order=True)["row"]
        return rows

    when = pl.col("start").dt.to_string("%Y-%m-%d %H:%M:%S")
    suspense = [
        _suspend(records.filter(~keep), "duplicate", "record_key",
                 pl.format("record {} was rated before", pl.col("record_key"))),
        _suspend(records.filter(keep & (outcome == _UNKNOWN)), "unknown_identifier", "identifier",
                 pl.format("no subscription held {} {} at {}", pl.col("identifier_kind"), pl.col("identifier"),
                           when)),
    ]
    rows = rows_of(keep & (outcome == _INACTIVE), by_start=True)
    suspense.append(_suspend(
        records[rows].with_columns(mapping.segment_columns(rows, "subscription_id", "status")),
        "subscription_not_active", "identifier",
        pl.format("subscription {} was {} at {}", pl.col("subscription_id"),
                  pl.col("status").fill_null("not started"), when)))
    rows = rows_of(keep & (outcome == _NO_CHARGE), by_start=True)
    suspense.append(_suspend(
        records[rows].with_columns(mapping.segment_columns(rows, "subscription_id")),
        "no_usage_charge", "service",
        pl.format("the plan of subscription {} has no usage charge for {}", pl.col("subscription_id"),
                  pl.col("service"))))
    rows = rows_of(keep & (outcome >= 0), by_start=True)
    taken = records if rows.len() == n and ordered else records[rows]
    mediated = mapping.output(taken, outcome.gather(rows), True)
    return mediated, pl.concat(suspense, how="vertical_relaxed")


_REASONS = [("duplicate", "record_key"), ("unknown_identifier", "identifier"),
            ("subscription_not_active", "identifier"), ("no_usage_charge", "service")]
# A record's outcome: the row of its output columns (>= 0), or why it is suspended.
_UNKNOWN, _INACTIVE, _NO_CHARGE = -1, -2, -3
_NEVER = datetime(1, 1, 1, tzinfo=ZoneInfo("UTC"))
_MAX_STEPS = 8  # an identifier with more segments within the records' span: a binary search
_END = 2 ** 63 - 1


def _known_series(known_keys) -> pl.Series | None:
    if known_keys is None:
        return None
    if isinstance(known_keys, pl.DataFrame):
        known_keys = known_keys["record_key"]
    if isinstance(known_keys, pl.Series):
        return known_keys.cast(pl.Utf8) if known_keys.len() else None
    return pl.Series(list(known_keys), dtype=pl.Utf8) if known_keys else None


def _new_and_first(keys: pl.Series, known_keys) -> pl.Series | None:
    """True for the records to mediate: the first of their key in the batch and not rated before
    (None: all of them)."""
    n = keys.len()
    keep = None
    hashes = keys.hash()
    if hashes.n_unique() < n:
        # Equal keys hash equal: only rows whose hash repeats can repeat a key; compare those exactly.
        rows = hashes.is_duplicated().arg_true()
        keep = pl.repeat(True, n, eager=True, dtype=pl.Boolean).scatter(
            rows, keys.gather(rows).is_first_distinct())
    known = _known_series(known_keys)
    if known is not None:
        new = ~keys.is_in(known.implode()).fill_null(False)
        keep = new if keep is None else keep & new
    return keep


def _codes(strings: pl.Expr, values: pl.Series) -> pl.Expr:
    """1 + the position of each string among a few distinct values, 0 if none (Int64)."""
    if values.len() > 8:
        return strings.replace_strict(values, pl.int_range(1, values.len() + 1, eager=True), default=0,
                                      return_dtype=pl.Int64)
    # A sum of equality masks: much cheaper than a when/then chain over millions of strings.
    return pl.sum_horizontal(strings.eq_missing(value).cast(pl.Int64) * (i + 1)
                             for i, value in enumerate(values.to_list())) if values.len() else pl.lit(0, pl.Int64)


def _nulls(n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.Int64, eager=True)


class _Mapping:
    """The lookups as segments: per identifier (kind, value) `code` and instant `at` within the
    records' span, what a record starting then maps to, and per (segment, service kind) the
    outcome. All of it on the small tables."""

    def __init__(self, lookups: Lookups, start: pl.Series):
        # Identifier codes: sorted by value and kind (stably, so a value's periods keep their order),
        # a code per (kind, value) and one per value, numbered in that order.
        ids = (lookups.identifiers.with_columns(pl.col("valid_from", "valid_to").cast(TS))
               .filter(pl.col("kind").is_not_null() & pl.col("value").is_not_null())
               .sort("value", "kind", maintain_order=True))
        new_value = (pl.col("value") != pl.col("value").shift(1)).fill_null(True)
        new_pair = new_value | (pl.col("kind") != pl.col("kind").shift(1)).fill_null(True)
        ids = ids.with_columns((new_value.cum_sum() - 1).cast(pl.Int64).alias("_v"),
                               (new_pair.cum_sum() - 1).cast(pl.Int64).alias("code"))
        self.kinds = ids["kind"].unique(maintain_order=True)
        self.values = ids.filter(new_value).select("value", "_v")
        pairs = ids.filter(new_pair).select("_v", _codes(pl.col("kind"), self.kinds).alias("_k"), "code")
        self.n_codes = pairs.height
        self.dense_codes = None  # (value, kind) -> code, when there are several kinds
        if self.kinds.len() > 1:
            self.dense_codes = _nulls(self.values.height * self.kinds.len()).scatter(
                pairs["_v"] * self.kinds.len() + pairs["_k"] - 1, pairs["code"])
        held_by = ids.drop("kind", "value", "_v")

        states = lookups.states.with_columns(pl.col("state_from").cast(TS))
        versions = (lookups.versions if lookups.versions is not None
                    else lookups.charges.select("plan_id", "version_from")).with_columns(
            pl.col("version_from").cast(TS)).unique().sort("version_from")
        # The records' span [low, high]: the mapping in force at low, and every instant within
        # (low, high] at which it may change for a code.
        low, high = start.min() or _NEVER, start.max() or _NEVER
        inside = (pl.col("at") > low) & (pl.col("at") <= high)
        subs = held_by.select("code", "subscription_id")
        changes = pl.concat([
            held_by.select("code", pl.col("valid_from").alias("at")).filter(inside),
            held_by.select("code", pl.col("valid_to").alias("at")).filter(inside),
            subs.join(states.select("subscription_id", pl.col("state_from").alias("at")).filter(inside),
                      on="subscription_id").select("code", "at"),
            subs.join(states.select("subscription_id", "plan_id").unique()
                      .join(versions.select("plan_id", pl.col("version_from").alias("at")).filter(inside),
                            on="plan_id"), on="subscription_id").select("code", "at"),
        ])
        instants = pairs.select("code", pl.lit(low).cast(TS).alias("at"))
        if changes.height:  # (code, instant) as one integer: code * len(times) + the instant's rank
            times = pl.concat([instants["at"].head(1), changes["at"]]).cast(pl.Int64).unique().sort()
            keys = pl.concat([pairs["code"] * times.len(), changes["code"] * times.len() + times.search_sorted(
                changes["at"].cast(pl.Int64), side="left").cast(pl.Int64)]).unique().sort()
            instants = pl.DataFrame({"code": keys // times.len(), "at": times.gather(keys % times.len()).cast(TS)})

        # What the old per-record logic gives at each (code, instant): the identifier's holder, the
        # subscription's state then (as-of), the plan version then (as-of).
        holds = ((pl.col("valid_from") <= pl.col("at"))
                 & (pl.col("valid_to").is_null() | (pl.col("at") < pl.col("valid_to"))))
        if held_by.height == self.n_codes:  # one validity period per identifier (row = code): no join
            periods = held_by.drop("code")
            if instants.height != self.n_codes:
                periods = periods[instants["code"]]
            segments = pl.concat([instants, periods], how="horizontal").with_columns(
                pl.when(holds).then(pl.col("subscription_id")).alias("subscription_id"))
        else:
            holder = (instants.join(held_by, on="code", how="inner", maintain_order="left_right").filter(holds)
                      .unique(["code", "at"], keep="first", maintain_order=True))
            segments = instants.join(holder, on=["code", "at"], how="left", maintain_order="left")
        segments = segments.drop("valid_from", "valid_to").select("code", "at", pl.exclude("code", "at"))
        if not segments["at"].is_sorted():
            segments = segments.with_row_index("_seg").sort("at", maintain_order=True)
        segments = (segments.join_asof(states.sort("state_from"), left_on="at", right_on="state_from",
                                       by="subscription_id", strategy="backward", check_sortedness=False)
                    .join_asof(versions, left_on="at", right_on="version_from", by="plan_id", strategy="backward",
                               check_sortedness=False))
        if "_seg" in segments.columns:
            segments = segments.sort("_seg").drop("_seg")
        self.segments = segments

        # Finding a record's segment: its code's first segment, then one step forward per later
        # instant of the code that is not after the record's start (the codes have a few segments
        # each at most, usually one); a binary search if some code has many.
        at = segments["at"].cast(pl.Int64)
        first = segments.select("code").with_row_index("_row").group_by("code").agg(
            pl.col("_row").first().cast(pl.Int64).alias("first"), pl.len().alias("count"))
        self.seg_first = _nulls(self.n_codes).scatter(first["code"], first["first"])
        self.steps = int(first["count"].max() or 1) - 1
        self.next_at = self.seg_key = self.times = self.several = None
        if 0 < self.steps <= _MAX_STEPS:
            same_code = (segments["code"] == segments["code"].shift(-1)).fill_null(False)
            self.next_at = pl.select(pl.when(same_code).then(at.shift(-1)).otherwise(_END)).to_series()
        elif self.steps:
            self.times = at.unique().sort()
            self.several = first.filter(pl.col("count") > 1)["code"]
            self.seg_key = (segments["code"] * (self.times.len() + 1)
                            + self.times.search_sorted(at, side="left").cast(pl.Int64) + 1)

        # Per segment and service kind: the output row (subscription, state, version, charge and
        # account columns, as the old joins carried them) or the reason.
        charges = lookups.charges.with_columns(pl.col("version_from").cast(TS)).unique(
            ["plan_id", "version_from", "service_kind"], keep="first", maintain_order=True)
        self.charge_kinds = charges["service_kind"].unique(maintain_order=True)
        width = self.charge_kinds.len() + 1  # slot 0: a service no plan charges, then the charged kinds
        carried = [c for c in segments.columns if c not in ("code", "at", "status", "state_from", "version_from")]
        rows = (segments.with_row_index("_seg")
                .filter(pl.col("subscription_id").is_not_null() & (pl.col("status") == "active"))
                .select(pl.col("_seg").cast(pl.Int64), *carried, "version_from")
                .join(lookups.accounts, on="account_id", how="left", maintain_order="left"))
        accounts = [c for c in lookups.accounts.columns if c != "account_id"]
        rows = rows.join(charges, on=["plan_id", "version_from"], how="inner", maintain_order="left_right")
        rows = rows.select(pl.exclude(accounts), *accounts)  # the account's columns last, as the old joins had them
        slots = rows["_seg"] * width + rows.select(_codes(pl.col("service_kind"), self.charge_kinds)).to_series()
        self.rows = rows.drop("_seg", "version_from", "service_kind")
        verdict = segments.select(
            pl.when(pl.col("subscription_id").is_null()).then(_UNKNOWN)
            .when(pl.col("status").is_null() | (pl.col("status") != "active")).then(_INACTIVE)
            .otherwise(_NO_CHARGE).cast(pl.Int64)).to_series()
        self.outcome = verdict.gather(pl.int_range(verdict.len() * width, eager=True) // width).scatter(
            slots, pl.int_range(rows.height, eager=True, dtype=pl.Int64))
        self.width = width

    def segment_of(self, records: pl.DataFrame, start: pl.Series) -> pl.Series:
        """Per record, its segment's row (null: unknown identifier)."""
        value = records.select(pl.col("identifier").alias("value")).join(
            self.values, on="value", how="left", maintain_order="left")["_v"]
        kind = records.select(_codes(pl.col("identifier_kind"), self.kinds)).to_series()
        if self.dense_codes is not None:
            value = value * self.kinds.len() + kind - 1
        code = pl.select(pl.when((kind > 0) & start.is_not_null()).then(value)).to_series()
        if self.dense_codes is not None:
            code = self.dense_codes.gather(code)
        seg = self.seg_first.gather(code)
        if self.next_at is not None:
            t = start.cast(pl.Int64)
            for _ in range(self.steps):
                seg = seg + (self.next_at.gather(seg) <= t).cast(pl.Int64)
        elif self.steps:  # a binary search of (code, rank of start) among the segments' keys
            rows = code.is_in(self.several.implode()).fill_null(False).arg_true()
            keys = code.gather(rows) * (self.times.len() + 1) + self.times.search_sorted(
                start.gather(rows).cast(pl.Int64), side="right").cast(pl.Int64)
            seg = seg.scatter(rows, self.seg_key.search_sorted(keys, side="right").cast(pl.Int64) - 1)
        return seg

    def outcomes(self, records: pl.DataFrame, start: pl.Series) -> pl.Series:
        """Per record: its output row (>= 0), _UNKNOWN, _INACTIVE or _NO_CHARGE."""
        self.seg = self.segment_of(records, start)
        kind = records.select(_codes(pl.col("service"), self.charge_kinds)).to_series()
        return self.outcome.gather(self.seg * self.width + kind).fill_null(_UNKNOWN)

    def segment_columns(self, rows: pl.Series, *names: str) -> list[pl.Series]:
        """Columns of the segments of the records at `rows` (after `outcomes`)."""
        return [self.segments[name].gather(self.seg.gather(rows)) for name in names]

    def output(self, records: pl.DataFrame, outcome: pl.Series, ordered: bool) -> pl.DataFrame:
        """The mediated records: the records (in start order), service renamed service_kind, then
        their rows' columns and the quantity."""
        if not ordered:
            order = pl.DataFrame({"start": records["start"], "row": pl.int_range(records.height, eager=True)})
            order = order.sort("start", maintain_order=True)["row"]
            records, outcome = records[order], outcome.gather(order)
        return pl.concat([records.rename({"service": "service_kind"}), self.rows[outcome]], how="horizontal"
                         ).with_columns(quantity_expr_for("service_kind"))


def quantity_expr_for(kind_column: str) -> pl.Expr:
    kind = pl.col(kind_column)
    return (pl.when(kind == "voice").then(pl.col("duration_s"))
            .when(kind == "data").then(pl.col("volume_bytes"))
            .otherwise(pl.col("events"))).fill_null(0).cast(pl.Int64).alias("quantity")
