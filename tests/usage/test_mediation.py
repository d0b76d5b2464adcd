"""Mediation maps records onto the subscription holding the identifier at the record's time,
its plan's usage charge for the service, and suspends what cannot be mapped, with a reason."""
from datetime import date, datetime, timezone

import polars as pl
import pytest

from obol.catalog.models import PricePlan
from obol.catalog.services import load_catalog
from obol.subscriptions import services as subscriptions
from obol.usage.importers.base import RECORD_SCHEMA
from obol.usage.mediation import load_lookups, mediate
from tests.factories import make_account

pytestmark = pytest.mark.django_db

CATALOG = """
catalog: 1
effective_from: 2025-01-01
services:
  - {code: voice, name: Voice, kind: voice, unit: second}
  - {code: sms, name: SMS, kind: sms, unit: sms}
plans:
  - code: talk
    name: Talk
    charges:
      - {type: usage, code: calls, service: voice, rate_table: voice-national}
"""


def record(key, msisdn, start, service="voice", duration=60, events=None, line=1):
    return {"source": "t", "file": "f.csv", "line": line, "record_key": key, "service": service,
            "identifier_kind": "msisdn", "identifier": msisdn, "destination": "4930123456",
            "start": start, "duration_s": duration if service == "voice" else None, "volume_bytes": None,
            "events": events, "raw": f"raw {key}"}


def at(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def subscription(in_tenant, system, clerk):
    load_catalog(CATALOG, source="test", actor=system)
    sub = subscriptions.subscribe(clerk, make_account(), PricePlan.objects.get(code="talk"),
                                  start_date=date(2026, 3, 1),
                                  identifiers_=[{"kind": "msisdn", "value": "491511111111"}])
    subscriptions.transition(clerk, sub, "suspend", date(2026, 3, 20))
    return sub


def test_records_are_mapped_or_suspended_with_a_reason(subscription):
    records = pl.DataFrame([
        record("k1", "491511111111", at(2026, 3, 10, 9)),                       # mapped
        record("k2", "491599999999", at(2026, 3, 10, 9), line=2),               # nobody holds it
        record("k3", "491511111111", at(2026, 2, 27, 9), line=3),               # before the start
        record("k4", "491511111111", at(2026, 3, 25, 9), line=4),               # suspended then
        record("k5", "491511111111", at(2026, 3, 11, 9), "sms", events=1, line=5),  # no sms charge
        record("k1", "491511111111", at(2026, 3, 10, 9), line=6),               # same key again
        record("k6", "491511111111", at(2026, 3, 12, 9), line=7),               # rated before
    ], schema=RECORD_SCHEMA)
    mediated, suspense = mediate(records, load_lookups(), known_keys={"k6"})
    assert mediated.select("record_key", "subscription_id", "service", "service_kind", "rate_table",
                           "quantity", "account_currency").rows() == [
        ("k1", subscription.pk, "voice", "voice", "voice-national", 60, "EUR")]
    reasons = dict(suspense.select("line", "reason").rows())
    assert reasons == {2: "unknown_identifier", 3: "unknown_identifier", 4: "subscription_not_active",
                       5: "no_usage_charge", 6: "duplicate", 7: "duplicate"}
    message = suspense.filter(pl.col("line") == 4)["message"][0]
    assert message == f"subscription {subscription.pk} was suspended at 2026-03-25 09:00:00"


def test_a_plan_version_without_the_usage_charge_means_no_tariff(subscription, system):
    """Version 2 of the plan (from 2026-03-15) dropped its voice usage charge: calls from then on
    have no usage charge, they are not priced by version 1's."""
    from obol.catalog.services import apply_plan
    from obol.core.clock import frozen

    with frozen(date(2026, 3, 14)):
        apply_plan({"code": "talk", "name": "Talk", "charges": [
            {"type": "recurring", "code": "fee", "price": "5"}]}, actor=system, effective_from=date(2026, 3, 15))
    records = pl.DataFrame([record("a", "491511111111", at(2026, 3, 14, 9)),
                            record("b", "491511111111", at(2026, 3, 16, 9), line=2)], schema=RECORD_SCHEMA)
    # the subscription is suspended from the 20th; both calls are before that
    mediated, suspense = mediate(records, load_lookups())
    assert mediated["record_key"].to_list() == ["a"]
    assert suspense.select("record_key", "reason").rows() == [("b", "no_usage_charge")]
