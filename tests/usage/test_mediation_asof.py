"""Mediation's as-of logic against a per-record reference: which subscription held an identifier
at a record's start, that subscription's state then, the plan version then and its usage charge.
The lookups are built as frames (no database), with instants that coincide on purpose (an
identifier handed over, a suspension or a new plan version at the very second of a record)."""
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obol.usage import mediation
from obol.usage.importers.base import RECORD_SCHEMA
from obol.usage.mediation import TS, Lookups, mediate

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
SERVICES = ["voice", "sms", "data"]
KINDS = ["msisdn", "imsi"]


def at(hour: int, micro: int = 0) -> datetime:
    return T0 + timedelta(hours=hour, microseconds=micro)


ACCOUNTS = ((1, "EUR", "postpaid", 1), (2, "CHF", "prepaid", 15))


def lookups(identifiers, states, versions, charges, accounts=ACCOUNTS):
    """identifiers: (kind, value, from, to, subscription); states: (subscription, account, plan,
    status, from); versions: (plan, from); charges: (plan, version from, service kind, rate table)."""
    return Lookups(
        identifiers=pl.DataFrame(identifiers, orient="row", schema={
            "kind": pl.Utf8, "value": pl.Utf8, "valid_from": TS, "valid_to": TS, "subscription_id": pl.Int64}),
        states=pl.DataFrame(states, orient="row", schema={
            "subscription_id": pl.Int64, "account_id": pl.Int64, "plan_id": pl.Int64, "status": pl.Utf8,
            "state_from": TS}),
        charges=pl.DataFrame([(p, v, kind, f"{kind}-svc", table) for p, v, kind, table in charges], orient="row",
                             schema={"plan_id": pl.Int64, "version_from": TS, "service_kind": pl.Utf8,
                                     "service": pl.Utf8, "rate_table": pl.Utf8}),
        accounts=pl.DataFrame(list(accounts), orient="row", schema={
            "account_id": pl.Int64, "account_currency": pl.Utf8, "mode": pl.Utf8, "bill_cycle_day": pl.Int64}),
        versions=pl.DataFrame(versions, orient="row", schema={"plan_id": pl.Int64, "version_from": TS}),
    )


def records(rows):
    """rows: (key, kind, value, start, service), line = position + 1."""
    return pl.DataFrame([
        {"source": "t", "file": "f.csv", "line": i + 1, "record_key": key, "service": service,
         "identifier_kind": kind, "identifier": value, "destination": "4930", "start": start,
         "duration_s": 60 if service == "voice" else None, "volume_bytes": 1000 if service == "data" else None,
         "events": 1 if service == "sms" else None, "raw": None if i % 2 else f"line {i + 1}"}
        for i, (key, kind, value, start, service) in enumerate(rows)], schema=RECORD_SCHEMA)


def outcome(mediated: pl.DataFrame, suspense: pl.DataFrame) -> dict[int, tuple]:
    """line -> (subscription, rate table) if mediated, else (reason, message)."""
    result = {line: (sub, table) for line, sub, table in
              mediated.select("line", "subscription_id", "rate_table").rows()}
    result.update({line: (reason, message) for line, reason, message in
                   suspense.select("line", "reason", "message").rows()})
    return result


# --- table-driven: the instants that coincide ----------------------------------------------------

HANDED_OVER = lookups(
    identifiers=[("msisdn", "4915", at(0), at(10), 1), ("msisdn", "4915", at(10), None, 2)],
    states=[(1, 1, 1, "active", at(0)), (2, 2, 1, "active", at(0)), (2, 2, 1, "suspended", at(20))],
    versions=[(1, at(0)), (1, at(30))],
    charges=[(1, at(0), "voice", "v1"), (1, at(30), "voice", "v2")],
)


@pytest.mark.parametrize("start, expected", [
    (at(10, -1), (1, "v1")),                                    # the last microsecond of the first holder
    (at(10), (2, "v1")),                                        # handed over at that very instant
    (at(20, -1), (2, "v1")),
    (at(20), ("subscription_not_active", "subscription 2 was suspended at 2026-03-01 20:00:00")),
    (at(-1), ("unknown_identifier", "no subscription held msisdn 4915 at 2026-02-28 23:00:00")),
])
def test_the_holder_and_state_at_the_exact_start(start, expected):
    mediated, suspense = mediate(records([("k", "msisdn", "4915", start, "voice")]), HANDED_OVER)
    assert outcome(mediated, suspense) == {1: expected}


def test_a_plan_version_from_the_records_very_start_prices_it():
    lk = lookups(identifiers=[("msisdn", "4915", at(0), None, 1)], states=[(1, 1, 1, "active", at(0))],
                 versions=[(1, at(0)), (1, at(30)), (1, at(40))],
                 charges=[(1, at(0), "voice", "v1"), (1, at(30), "voice", "v2")])  # version 3 has none
    rows = [("a", "msisdn", "4915", at(30, -1), "voice"), ("b", "msisdn", "4915", at(30), "voice"),
            ("c", "msisdn", "4915", at(40), "voice"), ("d", "msisdn", "4915", at(31), "sms")]
    mediated, suspense = mediate(records(rows), lk)
    assert outcome(mediated, suspense) == {
        1: (1, "v1"), 2: (1, "v2"),
        3: ("no_usage_charge", "the plan of subscription 1 has no usage charge for voice"),
        4: ("no_usage_charge", "the plan of subscription 1 has no usage charge for sms")}


def test_the_same_value_of_another_kind_is_another_identifier():
    lk = lookups(identifiers=[("msisdn", "4915", at(0), None, 1), ("imsi", "4915", at(0), None, 2)],
                 states=[(1, 1, 1, "active", at(0)), (2, 2, 1, "active", at(0))], versions=[(1, at(0))],
                 charges=[(1, at(0), "voice", "v1")])
    rows = [("a", "imsi", "4915", at(1), "voice"), ("b", "msisdn", "4915", at(1), "voice"),
            ("c", "username", "4915", at(1), "voice")]
    mediated, suspense = mediate(records(rows), lk)
    assert outcome(mediated, suspense) == {
        1: (2, "v1"), 2: (1, "v1"),
        3: ("unknown_identifier", "no subscription held username 4915 at 2026-03-01 01:00:00")}


def test_records_keep_their_order_columns_and_raw():
    """In (start, record_key) order as the mass process passes them, the mediated records stay in
    that order (ties of start included); raw is passed through as it is, null or not."""
    rows = [(f"k{i}", "msisdn", "4915", at(h), "voice") for i, h in enumerate([1, 1, 1, 2, 2, 5])]
    frame = records(rows)
    mediated, suspense = mediate(frame, HANDED_OVER)
    assert suspense.is_empty()
    assert mediated["line"].to_list() == [1, 2, 3, 4, 5, 6]
    assert mediated["raw"].to_list() == frame["raw"].to_list() == ["line 1", None, "line 3", None, "line 5", None]
    assert mediated.columns == [
        "source", "file", "line", "record_key", "service_kind", "identifier_kind", "identifier", "destination",
        "start", "duration_s", "volume_bytes", "events", "raw", "subscription_id", "account_id", "plan_id",
        "service", "rate_table", "account_currency", "mode", "bill_cycle_day", "quantity"]
    assert mediated.select("account_currency", "mode", "bill_cycle_day", "quantity").row(0) == (
        "EUR", "postpaid", 1, 60)


def test_records_out_of_order_come_out_by_start_ties_as_they_came():
    rows = [("a", "msisdn", "4915", at(5), "voice"), ("b", "msisdn", "4915", at(1), "voice"),
            ("c", "msisdn", "4915", at(5), "voice"), ("d", "msisdn", "4915", at(1), "voice"),
            ("e", "msisdn", "4915", at(21), "voice"), ("f", "msisdn", "4915", at(20), "voice")]
    mediated, suspense = mediate(records(rows), HANDED_OVER)
    assert mediated["record_key"].to_list() == ["b", "d", "a", "c"]
    assert suspense["record_key"].to_list() == ["f", "e"]  # by start too


@pytest.mark.parametrize("known", [{"b"}, ["b"], pl.Series(["b", "zz"]), pl.DataFrame({"record_key": ["b"]})],
                         ids=["set", "list", "series", "frame"])
def test_known_keys_as_a_set_a_series_or_a_frame(known):
    rows = [("a", "msisdn", "4915", at(1), "voice"), ("b", "msisdn", "4915", at(2), "voice"),
            ("a", "msisdn", "4915", at(3), "voice")]
    mediated, suspense = mediate(records(rows), HANDED_OVER, known_keys=known)
    assert mediated["line"].to_list() == [1]
    assert suspense.select("line", "reason", "message").rows() == [
        (2, "duplicate", "record b was rated before"), (3, "duplicate", "record a was rated before")]


# --- property: any timeline, against a per-record reference ---------------------------------------

def reference(rows, identifiers, states, versions, charges, known):
    """line -> outcome, one record at a time, as the rules read."""
    result, seen = {}, set()
    for line, (key, kind, value, start, service) in enumerate(rows, 1):
        first = key not in seen
        seen.add(key)
        if not first or key in known:
            result[line] = ("duplicate", f"record {key} was rated before")
            continue
        holders = [sub for k, v, f, t, sub in identifiers if k == kind and v == value and f <= start
                   and (t is None or start < t)]
        if not holders:
            result[line] = ("unknown_identifier",
                            f"no subscription held {kind} {value} at {start:%Y-%m-%d %H:%M:%S}")
            continue
        sub = holders[0]
        then = max((s for s in states if s[0] == sub and s[4] <= start), key=lambda s: s[4], default=None)
        if then is None or then[3] != "active":
            status = then[3] if then else "not started"
            result[line] = ("subscription_not_active",
                            f"subscription {sub} was {status} at {start:%Y-%m-%d %H:%M:%S}")
            continue
        version = max((f for p, f in versions if p == then[2] and f <= start), default=None)
        tables = [t for p, v, k, t in charges if p == then[2] and v == version and k == service]
        result[line] = ((sub, tables[0]) if tables else
                        ("no_usage_charge", f"the plan of subscription {sub} has no usage charge for {service}"))
    return result


@st.composite
def timelines(draw):
    subs = draw(st.integers(1, 4))
    identifiers = []
    for kind in KINDS:
        for value in ["491", "492", "493"]:
            hour = draw(st.integers(-4, 6))
            for _ in range(draw(st.integers(0, 3))):  # periods one after the other, handed between subscriptions
                end = draw(st.one_of(st.none(), st.integers(hour + 1, hour + 8)))
                identifiers.append((kind, value, at(hour), at(end) if end is not None else None,
                                    draw(st.integers(1, subs))))
                if end is None:
                    break
                hour = end + draw(st.sampled_from([0, 0, 2]))
    identifiers = draw(st.permutations(identifiers))
    states = []
    for sub in range(1, subs + 1):
        hours = sorted(draw(st.sets(st.integers(-4, 16), max_size=4)))
        states += [(sub, draw(st.integers(1, 2)), draw(st.integers(1, 2)),
                    draw(st.sampled_from(["active", "active", "suspended", "pending", "terminated"])), at(h))
                   for h in hours]
    versions = [(plan, at(h)) for plan in (1, 2) for h in sorted(draw(st.sets(st.integers(-4, 16), min_size=1,
                                                                                max_size=3)))]
    charges = [(plan, f, service, f"{service}-{plan}-{f:%d%H}") for plan, f in versions for service in SERVICES
               if draw(st.booleans())]
    rows = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]),
                                   st.sampled_from(KINDS + ["username"]), st.sampled_from(["491", "492", "493"]),
                                   st.integers(-3, 18).map(at), st.sampled_from(SERVICES + ["mms"])),
                         max_size=25))
    if draw(st.booleans()):
        rows = sorted(rows, key=lambda r: (r[3], r[0]))
    known = draw(st.sets(st.sampled_from(["a", "b", "h"]), max_size=2))
    return rows, identifiers, states, versions, charges, known


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines(), st.sampled_from([mediation._MAX_STEPS, 0]))
def test_mediation_agrees_with_the_per_record_reference(timeline, max_steps):
    """max_steps 0: every identifier whose mapping changes within the file takes the binary search
    that a file with many changes per identifier would take."""
    rows, identifiers, states, versions, charges, known = timeline
    usual, mediation._MAX_STEPS = mediation._MAX_STEPS, max_steps
    try:
        mediated, suspense = mediate(records(rows), lookups(identifiers, states, versions, charges),
                                     known_keys=known)
    finally:
        mediation._MAX_STEPS = usual
    assert outcome(mediated, suspense) == reference(rows, identifiers, states, versions, charges, known)
    assert mediated.height + suspense.height == len(rows)
    # mediated records by start, ties in the order they came
    assert mediated["line"].to_list() == sorted(mediated["line"].to_list(), key=lambda line: rows[line - 1][3])
