"""Plan allowances: a pocket per period, proration, rollover, the daily job and its command.

Numbers are what a billing clerk would check: the minutes in an account's allowance pockets for a
period, their validity, and the labels the customer sees."""
import itertools
import re
import threading
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from obol.balances import allowances, services
from obol.balances.models import LedgerEntry, Pocket, Source
from obol.catalog.models import Allowance, PricePlan
from obol.catalog.services import load_catalog, plan_document, version_content
from obol.core.actors import Actor
from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.errors import Forbidden, ValidationFailed
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from obol.subscriptions import services as subscriptions
from obol.subscriptions.models import Subscription
from obol.subscriptions.signals import subscription_activated
from tests.factories import make_account

pytestmark = pytest.mark.django_db
D = date

CATALOG = """
catalog: 1
effective_from: 2025-01-01
services:
  - {code: voice, name: Voice, kind: voice, unit: second}
  - {code: sms, name: SMS, kind: sms, unit: sms}
  - {code: data, name: Data, kind: data, unit: byte}
plans:
  - code: talk
    name: Talk
    allowances:
      - {service: voice, amount: 300, unit: minute, rollover_cap: 100}
  - code: talk-plus
    name: Talk plus
    allowances:
      - {service: voice, amount: 500, unit: minute}
  - code: prorated
    name: Prorated
    allowances:
      - {service: voice, amount: 300, unit: minute, prorate: true}
      - {service: sms, amount: 100, unit: sms, prorate: true}
      - {service: data, amount: 5, unit: gigabyte}
  - code: mixed
    name: Mixed periods
    allowances:
      - {service: sms, amount: 50, unit: sms, period: week}
      - {service: data, amount: 10, unit: gigabyte, period: quarter}
      - {service: voice, amount: 1000, unit: minute, period: year}
"""


def at(day: date, hour=12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo("UTC"))


@pytest.fixture(autouse=True)
def granted_by_the_job_only():
    """These tests drive the granting job by hand: activation's own grant is switched off here
    (test_allowance_on_activation.py covers it)."""
    subscription_activated.disconnect(allowances.grant_on_activation)
    yield
    subscription_activated.connect(allowances.grant_on_activation)


@pytest.fixture
def catalog(in_tenant, system):
    load_catalog(CATALOG, source="test", actor=system)


def plan(code):
    return PricePlan.objects.get(code=code)


_accounts = itertools.count(1)


def subscribe(clerk, plan_code, start, account=None, **account_fields):
    account = account or make_account(number=f"A-{next(_accounts)}", **account_fields)
    with frozen(start):
        return subscriptions.subscribe(clerk, account, plan(plan_code), start_date=start)


def grant(actor, subscription, day, now=None):
    with frozen(now or day):
        return allowances.grant_allowances(actor, subscription, day)


def period_pockets(subscription, start):
    return list(Pocket.objects.filter(subscription=subscription, source=Source.ALLOWANCE, period_start=start)
                .order_by("priority", "pk"))


def left(pockets, unit="minute"):
    """What the pockets hold, in `unit`, after refreshing them."""
    total = Amount(0, unit)
    for pocket in pockets:
        pocket.refresh_from_db()
        total = total + Amount(pocket.balance, pocket.unit).convert(unit)
    return total.value


def use_voice(clerk, subscription, minutes, day, reference):
    with frozen(at(day)):
        services.spend(clerk, subscription.account, Amount(minutes, "minute"), reference=reference,
                       service="voice")


# --- the worked example ---------------------------------------------------------------


@pytest.mark.parametrize("expire_first", [False, True], ids=["balance", "after-expiry-job"])
@pytest.mark.parametrize(("used", "february", "rolled"), [(0, 400, 100), (50, 350, 50), (200, 300, None),
                                                          (300, 300, None)])
def test_300_minutes_with_a_cap_of_100_roll_over(catalog, clerk, system, used, february, rolled,
                                                  expire_first):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    [january] = grant(clerk, sub, D(2026, 1, 1))
    assert (january.granted, january.unit, january.display_unit) == (Decimal(18000), "second", "minute")
    assert (january.valid_from, january.valid_until) == (midnight(D(2026, 1, 1)), midnight(D(2026, 2, 1)))
    assert january.rollover_cap == Decimal(6000)  # 100 minutes, in the pocket's seconds
    if used:
        use_voice(clerk, sub, used, D(2026, 1, 20), "cdr-jan")
    assert left([january]) == 300 - used
    if expire_first:
        with frozen(at(D(2026, 2, 1), hour=0)):
            assert services.expire_pockets(system) == (1 if used < 300 else 0)
        assert left([january]) == 0

    opened = grant(clerk, sub, D(2026, 2, 1))

    pockets = period_pockets(sub, D(2026, 2, 1))
    assert left(pockets) == february
    assert set(opened) == set(pockets)
    if rolled is None:
        assert [p.label for p in pockets] == ["Voice allowance 2026-02-01 – 2026-02-28"]
    else:
        rollover, allowance = pockets
        assert (rollover.label, left([rollover]), left([allowance])) == (
            "rolled over from 2026-01-01 – 2026-01-31", rolled, 300)
        assert rollover.priority < allowance.priority and rollover.services == ["voice"]
        assert (rollover.valid_from, rollover.valid_until) == (midnight(D(2026, 2, 1)),
                                                               midnight(D(2026, 3, 1)))
        assert rollover.rollover_cap is None
    assert services.verify() == []


def test_rolled_over_minutes_are_used_first_and_do_not_roll_again(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    grant(clerk, sub, D(2026, 1, 1))
    use_voice(clerk, sub, 50, D(2026, 1, 10), "cdr-1")
    rollover, february = grant(clerk, sub, D(2026, 2, 1))
    assert left([rollover, february]) == 350

    use_voice(clerk, sub, 20, D(2026, 2, 10), "cdr-2")
    assert (left([rollover]), left([february])) == (30, 300)  # the 50 rolled over go first

    # March: the 30 left of the rolled-over 50 expire; February's own 300 were unused: 100 roll over.
    grant(clerk, sub, D(2026, 3, 1))
    assert left(period_pockets(sub, D(2026, 3, 1))) == 400
    assert [p.label for p in period_pockets(sub, D(2026, 3, 1))] == [
        "rolled over from 2026-02-01 – 2026-02-28", "Voice allowance 2026-03-01 – 2026-03-31"]


def test_no_rollover_before_the_previous_period_has_ended(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    grant(clerk, sub, D(2026, 1, 1))
    # February granted in advance, on 25 January: January's minutes may still be used, so nothing rolls yet.
    early = grant(clerk, sub, D(2026, 2, 1), now=at(D(2026, 1, 25)))
    assert [p.label for p in early] == ["Voice allowance 2026-02-01 – 2026-02-28"]
    use_voice(clerk, sub, 70, D(2026, 1, 30), "cdr-1")
    # The daily job on 1 February adds what rolled over from what was really left.
    [rollover] = grant(clerk, sub, D(2026, 2, 1))
    assert left([rollover]) == 30
    assert left(period_pockets(sub, D(2026, 2, 1))) == 330


def test_granting_twice_is_a_no_op(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    first = grant(clerk, sub, D(2026, 1, 1))
    assert len(first) == 1
    assert grant(clerk, sub, D(2026, 1, 1)) == []
    assert grant(clerk, sub, D(2026, 1, 17)) == []  # any day of the same period
    [pocket] = period_pockets(sub, D(2026, 1, 1))
    assert pocket.grant_key == f"allowance:{sub.pk}:voice:0:2026-01-01"
    assert list(LedgerEntry.objects.filter(pocket=pocket).values_list("kind", "amount")) == [("grant", 18000)]
    [event] = history(sub.account).filter(action="allowance.grant")
    assert event.actor_label == "clerk@acme" and event.changes["subscription"] == sub.number
    assert event.changes["pockets"][0]["granted"] == "18000 second"


def test_a_read_only_user_cannot_grant(catalog, clerk, reader):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    with pytest.raises(Forbidden):
        grant(reader, sub, D(2026, 1, 1))
    assert period_pockets(sub, D(2026, 1, 1)) == []


# --- proration ----------------------------------------------------------------------------------


def test_activated_on_day_11_of_a_30_day_period_gets_20_30ths(catalog, clerk):
    sub = subscribe(clerk, "prorated", D(2026, 4, 11))
    opened = grant(clerk, sub, D(2026, 4, 11))
    voice, sms, data = opened
    assert (voice.granted, voice.display_unit) == (Decimal(12000), "minute")
    assert left([voice]) == 200  # 300 x 20 / 30
    assert left([sms], "sms") == 67  # 100 x 20/30 = 66.67, rounded half up to whole SMS
    assert left([data], "gigabyte") == 5  # this allowance does not prorate
    assert voice.valid_from == midnight(D(2026, 4, 1))  # the pocket still covers the whole period


def test_prorated_time_is_rounded_to_whole_seconds(catalog, clerk, tenant):
    tenant.rounding = "half_even"
    tenant.save()
    sub = subscribe(clerk, "prorated", D(2026, 3, 31))  # 1 day of 31
    voice, sms, _ = grant(clerk, sub, D(2026, 3, 31))
    assert voice.granted == Decimal(581)  # 18000 / 31 = 580.65 seconds
    assert voice.display_unit == "second"  # 581 seconds is no exact number of minutes
    assert sms.granted == Decimal(3)  # 100 / 31 = 3.2


def test_suspended_days_are_not_counted(catalog, clerk):
    sub = subscribe(clerk, "prorated", D(2026, 1, 1))
    with frozen(D(2026, 2, 1)):
        subscriptions.transition(clerk, sub, "suspend", D(2026, 3, 11))
        subscriptions.transition(clerk, sub, "resume", D(2026, 3, 21))
    voice, sms, data = grant(clerk, sub, D(2026, 3, 1))
    assert voice.granted == Decimal(12194)  # 21 of 31 days: 18000 s x 21 / 31 = 12193.55, to whole seconds
    assert left([sms], "sms") == 68  # 100 x 21 / 31 = 67.7
    assert left([data], "gigabyte") == 5


def test_suspended_for_the_whole_period_gets_nothing(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    grant(clerk, sub, D(2026, 1, 1))
    with frozen(D(2026, 1, 20)):
        subscriptions.transition(clerk, sub, "suspend", D(2026, 2, 1))
        subscriptions.transition(clerk, sub, "resume", D(2026, 3, 1))
    assert grant(clerk, sub, D(2026, 2, 14)) == []
    assert period_pockets(sub, D(2026, 2, 1)) == []
    # Back in March: a full allowance, and January's unused minutes did not skip February to land here.
    [march] = grant(clerk, sub, D(2026, 3, 1))
    assert left([march]) == 300


def test_pending_and_terminated_subscriptions_get_nothing(catalog, clerk):
    account = make_account()
    with frozen(D(2026, 1, 1)):
        pending = subscriptions.subscribe(clerk, account, plan("talk"), start_date=D(2026, 1, 1),
                                          activate=False)
    gone = subscribe(clerk, "talk", D(2026, 1, 1), account=account)
    with frozen(D(2026, 1, 1)):
        subscriptions.transition(clerk, gone, "terminate", D(2026, 2, 1))
    assert grant(clerk, pending, D(2026, 1, 5)) == []
    assert grant(clerk, gone, D(2026, 2, 5)) == []
    assert len(grant(clerk, gone, D(2026, 1, 5))) == 1  # it was active in January


# --- periods -------------------------------------------------------------------------------------


def test_cycle_day_31_gives_a_february_period_ending_on_the_28th(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 31), bill_cycle_day=31)
    [january] = grant(clerk, sub, D(2026, 2, 15))
    assert (january.period_start, january.period_end) == (D(2026, 1, 31), D(2026, 2, 28))
    assert (january.valid_from, january.valid_until) == (midnight(D(2026, 1, 31)), midnight(D(2026, 2, 28)))
    assert january.label == "Voice allowance 2026-01-31 – 2026-02-27"
    rollover, february = grant(clerk, sub, D(2026, 2, 28))
    assert (february.period_start, february.period_end) == (D(2026, 2, 28), D(2026, 3, 31))
    assert rollover.label == "rolled over from 2026-01-31 – 2026-02-27" and left([rollover]) == 100


def test_weekly_quarterly_and_yearly_allowances(catalog, clerk):
    sub = subscribe(clerk, "mixed", D(2026, 1, 1), bill_cycle_day=15)
    sms, data, voice = grant(clerk, sub, D(2026, 5, 20))  # a Wednesday
    assert (sms.period_start, sms.period_end, left([sms], "sms")) == (D(2026, 5, 18), D(2026, 5, 25), 50)
    assert (data.period_start, data.period_end) == (D(2026, 4, 15), D(2026, 7, 15))
    assert left([data], "gigabyte") == 10
    assert (voice.period_start, voice.period_end, left([voice])) == (D(2026, 1, 15), D(2027, 1, 15), 1000)
    # The next day only the week is new; on Monday the next week's SMS arrive.
    assert grant(clerk, sub, D(2026, 5, 21)) == []
    [next_week] = grant(clerk, sub, D(2026, 5, 25))
    assert (next_week.period_start, next_week.services) == (D(2026, 5, 25), ["sms"])


def test_the_plan_at_the_period_start_decides_and_rollover_follows_into_a_new_plan(catalog, clerk):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    grant(clerk, sub, D(2026, 1, 1))
    with frozen(D(2026, 1, 10)):
        subscriptions.change_plan(clerk, sub, plan("talk-plus"), D(2026, 2, 15))
    rollover, february = grant(clerk, sub, D(2026, 2, 20))  # first run in February, after the change
    assert (left([rollover]), left([february])) == (100, 300)  # February started on Talk
    # February's pocket (Talk, cap 100) decides what leaves February: 100 roll into Talk plus's 500.
    rollover, march = grant(clerk, sub, D(2026, 3, 1))
    assert (left([rollover]), left([march])) == (100, 500)
    # Talk plus has no rollover cap: nothing rolls out of March.
    assert [p.label for p in grant(clerk, sub, D(2026, 4, 1))] == ["Voice allowance 2026-04-01 – 2026-04-30"]


def test_a_new_plan_version_applies_from_the_next_period(catalog, clerk, system):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    with frozen(D(2026, 1, 10)):
        load_catalog(CATALOG.replace("amount: 300, unit: minute, rollover_cap: 100",
                                     "amount: 600, unit: minute, rollover_cap: 100"),
                     source="v2", actor=system, effective_from=D(2026, 1, 20))
    [january] = grant(clerk, sub, D(2026, 1, 25))
    assert left([january]) == 300  # version 1 was in force on 1 January
    rollover, february = grant(clerk, sub, D(2026, 2, 1))
    assert (left([rollover]), left([february])) == (100, 600)


# --- the daily job ------------------------------------------------------------------------------


def test_grant_due_grants_each_active_subscription_once(catalog, clerk, system):
    subs = [subscribe(clerk, "talk", D(2026, 1, 1)) for _ in range(3)]
    late = subscribe(clerk, "talk", D(2026, 1, 20))
    with frozen(D(2026, 1, 5)):
        report = allowances.grant_due(system)
    assert (report.day, report.subscriptions, report.granted, report.pockets, report.errors) == (
        D(2026, 1, 5), 3, 3, 3, [])
    with frozen(D(2026, 1, 20)):
        report = allowances.grant_due(system)
    assert (report.subscriptions, report.granted, report.pockets) == (4, 1, 1)
    assert all(left(period_pockets(s, D(2026, 1, 1))) == 300 for s in [*subs, late])


def test_already_granted_subscriptions_cost_no_queries_of_their_own(catalog, clerk, system):
    def rerun_queries(new):
        with frozen(D(2026, 2, 1)):
            allowances.grant_due(system, D(2026, 1, 31))
            assert allowances.grant_due(system).pockets == new * 2  # February's allowance and rollover
            with CaptureQueriesContext(connection) as queries:
                report = allowances.grant_due(system)
        assert (report.subscriptions, report.pockets) == (len(Subscription.objects.all()), 0)
        return len(queries)

    for _ in range(2):
        subscribe(clerk, "talk", D(2026, 1, 1))
    few = rerun_queries(2)
    for _ in range(5):
        subscribe(clerk, "talk", D(2026, 1, 1))
    assert rerun_queries(5) == few <= 13  # the same queries for 2 subscriptions or 7


def test_one_failing_subscription_does_not_stop_the_others(catalog, clerk, system):
    good = subscribe(clerk, "talk", D(2026, 1, 1))
    odd = subscribe(clerk, "talk-plus", D(2026, 1, 1))
    # An allowance in a currency the account does not hold: opening its pocket is refused.
    version = plan("talk-plus").latest_version()
    Allowance.objects.create(version=version, position=1, service=version.allowances.first().service,
                             amount=Decimal(5), unit="USD")
    with frozen(D(2026, 1, 2)):
        report = allowances.grant_due(system)
    assert report.granted == 1 and [number for number, _ in report.errors] == [odd.number]
    assert "holds EUR, not USD" in report.errors[0][1]
    assert left(period_pockets(good, D(2026, 1, 1))) == 300
    assert period_pockets(odd, D(2026, 1, 1)) == []  # all or nothing per subscription


def test_the_command_grants_prints_counts_and_is_idempotent(catalog, clerk, tenant, other_tenant, capsys):
    sub = subscribe(clerk, "talk", D(2026, 1, 1))
    with tenant_context(other_tenant):
        make_account(number="G-1")
    with frozen(D(2026, 2, 3)):
        call_command("allowances", "grant", "--date", "2026-01-01", "--tenant", "acme")
        assert capsys.readouterr().out == (
            "acme 2026-01-01: 1 subscription(s) checked, 1 granted, 1 pocket(s) opened, 0 error(s)\n")
        call_command("allowances", "grant")  # today, every tenant
        out = capsys.readouterr().out
        call_command("allowances", "grant")
        again = capsys.readouterr().out
    assert out == (
        "acme 2026-02-03: 1 subscription(s) checked, 1 granted, 2 pocket(s) opened, 0 error(s)\n"
        "globex 2026-02-03: 0 subscription(s) checked, 0 granted, 0 pocket(s) opened, 0 error(s)\n")
    assert "acme 2026-02-03: 1 subscription(s) checked, 0 granted, 0 pocket(s) opened" in again
    assert left(period_pockets(sub, D(2026, 2, 1))) == 400


def test_the_command_reports_errors_and_bad_input(catalog, clerk, capsys):
    subscribe(clerk, "talk", D(2026, 1, 1))
    odd = subscribe(clerk, "talk-plus", D(2026, 1, 1))
    version = plan("talk-plus").latest_version()
    Allowance.objects.create(version=version, position=1, service=version.allowances.first().service,
                             amount=Decimal(5), unit="USD")
    with pytest.raises(CommandError, match="1 subscription"):
        call_command("allowances", "grant", "--date", "2026-01-01", "--tenant", "acme")
    captured = capsys.readouterr()
    assert "1 granted, 1 pocket(s) opened, 1 error(s)" in captured.out
    assert f"acme subscription {odd.number}: amount: account" in captured.err
    with pytest.raises(CommandError, match="not a date"):
        call_command("allowances", "grant", "--date", "2026-02-30")
    with pytest.raises(CommandError, match="no tenant"):
        call_command("allowances", "grant", "--tenant", "nope")


# --- concurrent jobs (PostgreSQL) ---------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_jobs_at_once_grant_each_pocket_once(tenant):
    clerk = Actor.process("test")
    with tenant_context(tenant):
        load_catalog(CATALOG, source="test", actor=clerk)
        account = make_account()
        subs = [subscribe(clerk, "talk", D(2026, 1, 1), account=account) for _ in range(4)]
        for sub in subs:
            grant(clerk, sub, D(2026, 1, 1))
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def job():
        try:
            with tenant_context(tenant), frozen(D(2026, 2, 1)):
                barrier.wait()
                reports.append(allowances.grant_due(clerk))
        except Exception as exc:  # noqa: BLE001 - a deadlock or a duplicate must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and all(r.errors == [] for r in reports)
    assert sum(r.pockets for r in reports) == 8  # 4 subscriptions x (allowance + rollover), once
    with tenant_context(tenant):
        assert [left(period_pockets(sub, D(2026, 2, 1))) for sub in subs] == [400] * 4
        assert services.verify() == []


# --- the catalog's rollover_cap -------------------------------------------------------------------


def test_rollover_cap_is_loaded_shown_and_priced_content(catalog, system):
    talk, plus = plan("talk").latest_version(), plan("talk-plus").latest_version()
    assert talk.allowances.get().rollover_cap == Decimal(100)
    assert plan_document(talk)["allowances"] == [
        {"service": "voice", "amount": "300", "unit": "minute", "period": "month", "prorate": False,
         "rollover_cap": "100"}]
    assert plan_document(plus)["allowances"][0]["rollover_cap"] is None
    # Without a cap the fingerprinted content is what it was before caps existed, so versions loaded
    # earlier are not taken for changed ones.
    assert version_content(plus)["allowances"] == [
        {"service": "voice", "amount": "500", "unit": "minute", "period": "month", "prorate": False}]
    with frozen(D(2026, 1, 10)):
        report = load_catalog(CATALOG.replace("rollover_cap: 100", "rollover_cap: 100.0"), source="same",
                              actor=system, effective_from=D(2026, 2, 1))
        assert report.new_versions == 0  # 100.0 is 100
        report = load_catalog(CATALOG.replace("rollover_cap: 100", "rollover_cap: 50"), source="cap",
                              actor=system, effective_from=D(2026, 2, 1))
    assert report.new_versions == 1
    assert plan("talk").version_at(D(2026, 2, 1)).allowances.get().rollover_cap == 50


@pytest.mark.parametrize(("cap", "reason"), [
    ("-1", "plans[0].allowances[0].rollover_cap: -1 is negative"),
    ("'1,5'", "plans[0].allowances[0].rollover_cap: '1,5' is not a decimal number"),
])
def test_a_bad_rollover_cap_is_refused_with_its_path(in_tenant, system, cap, reason):
    bad = CATALOG.replace("rollover_cap: 100", f"rollover_cap: {cap}")
    with pytest.raises(ValidationFailed, match=re.escape(reason)):
        load_catalog(bad, source="bad.yaml", actor=system)
    assert not PricePlan.objects.exists()
