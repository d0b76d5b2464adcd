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


def load_lookups() -> Lookups:
    """The tenant's identifiers, subscription timelines, usage charges and accounts as frames."""
    zone = ZoneInfo(current_tenant().timezone)
    identifiers = pl.DataFrame(
        list(UsageIdentifier.objects.values_list("kind", "value", "valid_from", "valid_to", "subscription_id")),
        schema={"kind": pl.Utf8, "value": pl.Utf8, "valid_from": TS, "valid_to": TS, "subscription_id": pl.Int64},
        orient="row",
    )
    changes = SubscriptionChange.objects.order_by("subscription_id", "seq").values_list(
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
        list(BillingAccount.objects.values_list("pk", "currency", "mode", "bill_cycle_day")),
        schema={"account_id": pl.Int64, "account_currency": pl.Utf8, "mode": pl.Utf8, "bill_cycle_day": pl.Int64},
        orient="row",
    )
    return Lookups(identifiers, states, charges, accounts, all_versions)


def _suspend(frame: pl.DataFrame, reason: str, field: str, message: pl.Expr) -> pl.DataFrame:
    return frame.select(
        "record_key", "line", pl.lit(reason).alias("reason"), pl.lit(field).alias("field"),
        message.alias("message"), "raw", pl.struct(RECORD_FIELDS).alias("record"),
    )


def mediate(records: pl.DataFrame, lookups: Lookups, known_keys: set[str] | frozenset = frozenset()
            ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(mediated records, suspense). Mediated rows gain subscription_id, account_id, plan_id,
    service (the catalog's service code), service_kind, rate_table, account_currency, mode and quantity."""
    suspense = []
    records = records.with_columns(pl.col("record_key").is_first_distinct().alias("_first"))
    duplicate = records.filter(~pl.col("_first") | pl.col("record_key").is_in(list(known_keys)))
    suspense.append(_suspend(duplicate, "duplicate", "record_key",
                             pl.format("record {} was rated before", pl.col("record_key"))))
    records = records.filter(pl.col("_first") & ~pl.col("record_key").is_in(list(known_keys))).drop("_first")

    held = (records.join(lookups.identifiers, left_on=["identifier_kind", "identifier"],
                         right_on=["kind", "value"], how="inner")
            .filter((pl.col("valid_from") <= pl.col("start"))
                    & (pl.col("valid_to").is_null() | (pl.col("start") < pl.col("valid_to"))))
            .unique("record_key", keep="first", maintain_order=True)
            .drop("valid_from", "valid_to"))
    unknown = records.join(held.select("record_key"), on="record_key", how="anti")
    suspense.append(_suspend(unknown, "unknown_identifier", "identifier",
                             pl.format("no subscription held {} {} at {}", pl.col("identifier_kind"),
                                       pl.col("identifier"), pl.col("start").dt.to_string("%Y-%m-%d %H:%M:%S"))))

    stated = held.sort("start").join_asof(
        lookups.states.sort("state_from"), left_on="start", right_on="state_from", by="subscription_id",
        strategy="backward", check_sortedness=False)
    active = stated.filter(pl.col("status") == "active")
    inactive = stated.filter(pl.col("status").is_null() | (pl.col("status") != "active"))
    suspense.append(_suspend(inactive, "subscription_not_active", "identifier",
                             pl.format("subscription {} was {} at {}", pl.col("subscription_id"),
                                       pl.col("status").fill_null("not started"),
                                       pl.col("start").dt.to_string("%Y-%m-%d %H:%M:%S"))))

    # Every version counts, with or without usage charges: a version without one means no tariff.
    versions = (lookups.versions if lookups.versions is not None
                else lookups.charges.select("plan_id", "version_from")).unique().sort("version_from")
    in_version = active.sort("start").join_asof(versions, left_on="start", right_on="version_from",
                                                by="plan_id", strategy="backward", check_sortedness=False)
    charged = in_version.join(
        lookups.charges.unique(["plan_id", "version_from", "service_kind"], keep="first", maintain_order=True),
        left_on=["plan_id", "version_from", "service"], right_on=["plan_id", "version_from", "service_kind"],
        how="left",
    )
    priced = charged.filter(pl.col("rate_table").is_not_null())
    no_charge = charged.filter(pl.col("rate_table").is_null())
    suspense.append(_suspend(no_charge, "no_usage_charge", "service",
                             pl.format("the plan of subscription {} has no usage charge for {}",
                                       pl.col("subscription_id"), pl.col("service"))))

    mediated = (priced.rename({"service": "service_kind", "service_right": "service"})
                .join(lookups.accounts, on="account_id", how="left")
                .with_columns(quantity_expr_for("service_kind"))
                .drop("state_from", "status", "version_from"))
    return mediated, pl.concat(suspense, how="vertical_relaxed") if suspense else None


def quantity_expr_for(kind_column: str) -> pl.Expr:
    kind = pl.col(kind_column)
    return (pl.when(kind == "voice").then(pl.col("duration_s"))
            .when(kind == "data").then(pl.col("volume_bytes"))
            .otherwise(pl.col("events"))).fill_null(0).cast(pl.Int64).alias("quantity")
