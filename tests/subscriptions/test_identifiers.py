"""Usage identifiers are unique at any instant within a tenant."""
from datetime import date, datetime, timezone

import pytest

from obol.core.audit import history
from obol.core.errors import Conflict, IllegalTransition, ValidationFailed
from obol.core.tenancy import tenant_context
from obol.subscriptions import services
from obol.subscriptions.models import UsageIdentifier
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def at(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def subs(in_tenant, clerk):
    plan = make_plan()
    first = services.subscribe(clerk, make_account("A-1"), plan, start_date=date(2026, 1, 1))
    second = services.subscribe(clerk, make_account("A-2"), plan, start_date=date(2026, 1, 1))
    return first, second


def test_same_msisdn_at_overlapping_times_is_refused(subs, clerk):
    first, second = subs
    services.attach_identifier(clerk, first, kind="msisdn", value="+49 151 2345 6789",
                               valid_from=at(2026, 1, 1), valid_to=at(2026, 7, 1))
    with pytest.raises(Conflict, match=r"msisdn 4915123456789 is already held by subscription S-000001") as err:
        services.attach_identifier(clerk, second, kind="msisdn", value="004915123456789",
                                   valid_from=at(2026, 6, 1))
    assert err.value.code == "identifier_in_use"
    assert second.identifiers.count() == 0


def test_same_msisdn_after_the_first_holder_released_it(subs, clerk):
    first, second = subs
    services.attach_identifier(clerk, first, kind="msisdn", value="4915123456789",
                               valid_from=at(2026, 1, 1), valid_to=at(2026, 7, 1))
    services.attach_identifier(clerk, second, kind="msisdn", value="4915123456789", valid_from=at(2026, 7, 1))
    assert services.subscription_holding("msisdn", "+4915123456789", at(2026, 6, 30, 23, 59)) == first
    assert services.subscription_holding("msisdn", "+4915123456789", at(2026, 7, 1)) == second
    assert services.subscription_holding("msisdn", "+4915123456789", at(2025, 12, 31)) is None


def test_termination_releases_identifiers_from_its_date(subs, clerk, tenant):
    first, second = subs
    services.attach_identifier(clerk, first, kind="imsi", value="262011234567890")
    services.transition(clerk, first, "terminate", date(2026, 5, 1))
    services.attach_identifier(clerk, second, kind="imsi", value="262011234567890",
                               valid_from=services.start_of_day(date(2026, 5, 1)))
    assert services.subscription_holding("imsi", "262011234567890", at(2026, 4, 30, 12)) == first
    assert services.subscription_holding("imsi", "262011234567890", at(2026, 5, 2)) == second


def test_the_same_msisdn_in_another_tenant_is_independent(subs, clerk, other_tenant):
    first, _ = subs
    services.attach_identifier(clerk, first, kind="msisdn", value="4915123456789")
    with tenant_context(other_tenant):
        plan = make_plan()
        other = services.subscribe(clerk, make_account("B-1"), plan, start_date=date(2026, 1, 1))
        services.attach_identifier(clerk, other, kind="msisdn", value="4915123456789")
        assert services.subscription_holding("msisdn", "4915123456789", at(2026, 3, 1)) == other


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [("msisdn", "12ab", "not an MSISDN"), ("imsi", "123", "not an IMSI"), ("username", " ", "cannot be empty"),
     ("iccid", "1", "not an identifier kind")],
)
def test_bad_identifiers_are_refused(subs, clerk, kind, value, message):
    with pytest.raises(ValidationFailed, match=message):
        services.attach_identifier(clerk, subs[0], kind=kind, value=value)


def test_ending_later_cannot_overlap_the_next_holder(subs, clerk):
    first, second = subs
    mine = services.attach_identifier(clerk, first, kind="msisdn", value="33600000001",
                                      valid_from=at(2026, 1, 1), valid_to=at(2026, 2, 1))
    services.attach_identifier(clerk, second, kind="msisdn", value="33600000001", valid_from=at(2026, 2, 1))
    with pytest.raises(Conflict, match="already held by subscription S-000002"):
        services.end_identifier(clerk, mine, at(2026, 6, 1))
    assert services.subscription_holding("msisdn", "33600000001", at(2026, 3, 1)) == second
    services.end_identifier(clerk, mine, at(2026, 1, 15))  # shortening is fine
    assert services.subscription_holding("msisdn", "33600000001", at(2026, 1, 20)) is None


def test_a_terminated_subscriptions_identifier_cannot_be_reopened(subs, clerk):
    first, _ = subs
    mine = services.attach_identifier(clerk, first, kind="msisdn", value="33600000002")
    services.transition(clerk, first, "terminate", date(2026, 5, 1))
    with pytest.raises(IllegalTransition, match="terminated from 2026-05-01"):
        services.end_identifier(clerk, UsageIdentifier.objects.get(pk=mine.pk), at(2030, 1, 1))


def test_termination_ends_identifiers_at_local_midnight(in_tenant, clerk):
    in_tenant.timezone = "Europe/Berlin"
    in_tenant.save()
    sub = services.subscribe(clerk, make_account("A-9"), make_plan("berlin"), start_date=date(2026, 1, 1),
                             identifiers_=[{"kind": "msisdn", "value": "4915100000001"}])
    services.transition(clerk, sub, "terminate", date(2026, 7, 1))
    identifier = sub.identifiers.get()
    assert identifier.valid_from == at(2025, 12, 31, 23)  # 2026-01-01 00:00 in Berlin (CET)
    assert identifier.valid_to == at(2026, 6, 30, 22)  # 2026-07-01 00:00 in Berlin (CEST)
    assert services.subscription_holding("msisdn", "4915100000001", at(2026, 6, 30, 21, 59)) == sub
    assert services.subscription_holding("msisdn", "4915100000001", at(2026, 6, 30, 22, 0)) is None
    ended = history(sub).get(action="subscription.terminate").changes["identifiers_ended"]
    assert ended == [{"kind": "msisdn", "value": "4915100000001",
                      "valid_to": [None, "2026-07-01T00:00:00+02:00"]}]


def test_a_time_without_zone_is_read_in_the_tenants_zone(in_tenant, clerk):
    in_tenant.timezone = "Europe/Berlin"
    in_tenant.save()
    sub = services.subscribe(clerk, make_account("A-8"), make_plan("zones"), start_date=date(2026, 1, 1))
    identifier = services.attach_identifier(clerk, sub, kind="username", value="Ada@Fibre",
                                            valid_from=datetime(2026, 3, 1, 8, 0))
    assert identifier.valid_from == at(2026, 3, 1, 7, 0) and identifier.value == "ada@fibre"
