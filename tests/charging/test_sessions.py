"""Real-time charging sessions on a prepaid subscriber, numbers worked out by hand: the sample
tariffs price calls to German mobile numbers at 0.10/min at peak (60/60 increments), SMS at 0.09."""
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from obol.balances import services as balances
from obol.balances.models import LedgerEntry, Pocket
from obol.catalog.models import PricePlan
from obol.charging import service as charging
from obol.charging.models import ChargingRequest, ChargingSession, ChargingSettings, LowBalanceEvent
from obol.core.clock import frozen
from obol.core.errors import Conflict, ValidationFailed
from obol.core.money import Amount
from obol.customers.models import BillingAccount
from obol.subscriptions import services as subscriptions
from obol.subscriptions.models import UsageIdentifier
from obol.usage.models import RatedRecord
from tests.factories import make_account
from tests.usage.test_import_pipeline import prepare

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN)  # peak
MOBILE = "491701234567"  # national-mobile: 0.10/min at peak, 60/60
PREPAID = "491522222222"  # the payg subscriber of `prepare`, 1.00 EUR topped up


@pytest.fixture
def setup(in_tenant, system, clerk):
    return prepare(in_tenant, system, clerk)


def money(number="A-2"):
    return Pocket.objects.get(account__number=number, source="topup").balance


def test_the_worked_example_grants_what_the_money_covers_and_charges_the_session_once(setup, system):
    with frozen(TUESDAY_10):
        first = charging.start(system, request_id="r1", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=300)
        assert (first.code, first.granted) == ("ok", 300)
        second = charging.update(system, first.session_id, request_id="r2", used=300, requested=600)
        assert (second.code, second.granted) == ("ok", 300)  # 0.50 EUR left after the 300 s used: 5 minutes
        last = charging.terminate(system, first.session_id, request_id="r3", used=61)
    # 361 s with 60/60 increments are 7 minutes: 0.70 EUR
    assert (last.code, last.used, last.charged) == ("ok", 361, Decimal("0.70"))
    assert money() == Decimal("0.30")
    session = ChargingSession.objects.get(key=first.session_id)
    assert session.state == "terminated" and session.holds == {} and session.granted == 0
    debit = LedgerEntry.objects.get(reference=f"charging:{session.key}")
    assert (debit.kind, debit.amount, debit.balance_after) == ("debit", Decimal("-0.70"), Decimal("0.30"))
    record = RatedRecord.objects.get(record_key=f"charging:{session.key}")
    assert (record.quantity, record.billed, record.price_micros, record.destination_group, record.time_band) == (
        361, 420, 700_000, "national-mobile", "peak")
    assert record.cycle_start == date(2026, 3, 1) and not record.uncovered
    assert balances.verify() == []


def test_a_replayed_request_gets_the_same_answer_and_changes_nothing(setup, system):
    with frozen(TUESDAY_10):
        started = charging.start(system, request_id="s1", subscriber=PREPAID, service="voice", destination=MOBILE,
                                 requested=120)
        again = charging.start(system, request_id="s1", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=120)
        assert again.session_id == started.session_id and again.granted == 120 and again.replayed
        done = charging.terminate(system, started.session_id, request_id="t1", used=90)
        repeat = charging.terminate(system, started.session_id, request_id="t1", used=90)
    assert done.charged == repeat.charged == Decimal("0.20") and repeat.replayed
    assert ChargingSession.objects.count() == 1 and ChargingRequest.objects.count() == 2
    assert money() == Decimal("0.80")
    assert LedgerEntry.objects.filter(kind="debit").count() == 1
    with pytest.raises(Conflict) as refused:
        charging.terminate(system, started.session_id, request_id="t1", used=30)
    assert refused.value.code == "request_id_reused"


def test_two_sessions_cannot_spend_the_same_credit(setup, system):
    with frozen(TUESDAY_10):
        one = charging.start(system, request_id="a", subscriber=PREPAID, service="voice", destination=MOBILE,
                             requested=900)
        two = charging.start(system, request_id="b", subscriber=PREPAID, service="voice", destination=MOBILE,
                             requested=60)
        assert (one.code, one.granted) == ("ok", 600)  # 1.00 EUR = 10 minutes, all held by the first
        assert (two.code, two.granted, two.session_id) == ("no_credit", 0, None)
        charging.terminate(system, one.session_id, request_id="a-end", used=100)  # 2 minutes: 0.20
        three = charging.start(system, request_id="c", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=3000)
    assert (three.code, three.granted) == ("ok", 480)  # the 0.80 left
    assert money() == Decimal("0.80")  # nothing is debited while a session is open


def test_an_abandoned_session_releases_its_hold_after_expiry(setup, system):
    ChargingSettings.objects.create(grant_validity_s=60)
    with frozen(TUESDAY_10):
        lost = charging.start(system, request_id="x", subscriber=PREPAID, service="voice", destination=MOBILE,
                              requested=600)
        assert lost.granted == 600 and lost.valid_until == TUESDAY_10 + timedelta(seconds=60)
    with frozen(TUESDAY_10 + timedelta(seconds=61)):
        # the hold has lapsed: a new session can have the whole credit, before the sweeper even runs
        fresh = charging.start(system, request_id="y", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=600)
        assert fresh.granted == 600
        assert charging.sweep(system) == 1
    lost_session = ChargingSession.objects.get(key=lost.session_id)
    assert lost_session.state == "expired" and lost_session.holds == {} and lost_session.charged == 0
    assert not RatedRecord.objects.filter(record_key=f"charging:{lost_session.key}").exists()
    assert money() == Decimal("1.00")


def test_the_sweeper_commits_reported_use_and_a_late_terminate_charges_the_rest(setup, system):
    ChargingSettings.objects.create(grant_validity_s=60)
    with frozen(TUESDAY_10):
        started = charging.start(system, request_id="1", subscriber=PREPAID, service="voice", destination=MOBILE,
                                 requested=60)
        charging.update(system, started.session_id, request_id="2", used=60, requested=60)
    with frozen(TUESDAY_10 + timedelta(minutes=5)):
        assert charging.sweep(system) == 1
        assert money() == Decimal("0.90")  # the 60 s reported: one minute
        late = charging.terminate(system, started.session_id, request_id="3", used=30)
        assert (late.code, late.used, late.charged) == ("ok", 90, Decimal("0.20"))  # 90 s: two minutes
        again = charging.update(system, started.session_id, request_id="4", used=1, requested=60)
    assert again.code == "session_finished"
    assert money() == Decimal("0.80")
    record = RatedRecord.objects.get(record_key=f"charging:{started.session_id}")
    assert (record.quantity, record.price_micros) == (90, 200_000)
    assert balances.verify() == []


def test_one_shot_events_are_debited_at_once_and_refused_without_credit(setup, system):
    with frozen(TUESDAY_10):
        answers = [charging.charge_event(system, request_id=f"sms-{i}", subscriber=PREPAID, service="sms",
                                         destination=MOBILE) for i in range(12)]
    # 1.00 EUR pays 11 SMS at 0.09 (0.99); the twelfth is refused and nothing is booked for it
    assert [a.code for a in answers] == ["ok"] * 11 + ["no_credit"]
    assert answers[0].charged == Decimal("0.09")
    assert money() == Decimal("0.01")
    assert RatedRecord.objects.filter(record_key__startswith="charging:event:").count() == 11


def test_refusals_have_stable_codes_and_no_side_effects(setup, system, clerk):
    with frozen(TUESDAY_10):
        unknown = charging.start(system, request_id="u", subscriber="491999999999", service="voice",
                                 destination=MOBILE, requested=60)
        no_session = charging.terminate(system, "0b7c1f7e-0000-4000-8000-000000000000", request_id="t",
                                        used=60)
        bad_id = charging.update(system, "not-a-session", request_id="t2", used=1, requested=1)
        video = charging.start(system, request_id="v", subscriber=PREPAID, service="mms", destination=MOBILE,
                               requested=1)
    assert unknown.code == "unknown_subscriber" and unknown.status == 404
    assert no_session.code == bad_id.code == "unknown_session"
    assert video.code == "no_tariff"
    assert ChargingSession.objects.count() == 0 and LedgerEntry.objects.filter(kind="debit").count() == 0
    assert not ChargingRequest.objects.filter(request_id__in=["t", "t2"]).exists()


def test_a_suspended_subscription_is_refused_and_its_open_sessions_get_no_more(setup, system, clerk):
    prepaid = setup["prepaid"]
    with frozen(TUESDAY_10):
        open_one = charging.start(system, request_id="o", subscriber=PREPAID, service="voice", destination=MOBILE,
                                  requested=60)
        subscriptions.transition(clerk, prepaid, "suspend", date(2026, 3, 10), reason="dunning")
        refused = charging.start(system, request_id="n", subscriber=PREPAID, service="voice", destination=MOBILE,
                                 requested=60)
        stopped = charging.update(system, open_one.session_id, request_id="o2", used=60, requested=60)
        ended = charging.terminate(system, open_one.session_id, request_id="o3", used=0)
    assert refused.code == "subscription_suspended" and refused.status == 403
    assert (stopped.code, stopped.granted) == ("subscription_suspended", 0)
    assert (ended.code, ended.charged) == ("ok", Decimal("0.10"))  # what was used is still charged


def test_allowance_minutes_come_first_and_the_rest_accrues_for_postpaid(setup, system):
    # the postpaid Mobile S subscriber has 300 included minutes this month
    with frozen(TUESDAY_10):
        started = charging.start(system, request_id="p", subscriber="491511111111", service="voice",
                                 destination=MOBILE, requested=3600)
        assert started.granted == 3600
        done = charging.terminate(system, started.session_id, request_id="p2", used=18_030)  # 300 min 30 s
    record = RatedRecord.objects.get(record_key=f"charging:{started.session_id}")
    assert (record.included, record.charged, record.billed) == (18_000, 30, 60)
    assert done.charged == record.price_micros / Decimal(1_000_000) > 0
    accrual = Pocket.objects.get(account__number="A-1", source="postpaid")
    assert accrual.balance == -done.charged
    assert record.accrued_micros == record.price_micros  # all of it is owed on the invoice
    assert balances.verify() == []


def test_a_commit_below_the_threshold_records_one_low_balance_event(setup, system):
    ChargingSettings.objects.create(low_balance_threshold=Decimal("0.50"))
    with frozen(TUESDAY_10):
        for i in range(3):  # 0.30 each: 0.70, 0.40 (crosses 0.50), 0.10
            s = charging.start(system, request_id=f"s{i}", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=180)
            charging.terminate(system, s.session_id, request_id=f"t{i}", used=180)
    event = LowBalanceEvent.objects.get()
    assert (event.balance, event.threshold, event.account.number) == (Decimal("0.40"), Decimal("0.50"), "A-2")


def test_a_prepaid_account_with_a_credit_limit_may_go_into_overdraft(in_tenant, system, clerk):
    prepare(in_tenant, system, clerk)
    account = make_account("A-9", mode="prepaid", credit_limit=Decimal("0.50"))
    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, account, PricePlan.objects.get(code="payg"), start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491533333333"}])
        balances.top_up(system, account, Amount("1.00", "EUR"), reference="PAY-9")
    with frozen(TUESDAY_10):
        s = charging.start(system, request_id="od", subscriber="491533333333", service="voice", destination=MOBILE,
                           requested=3600)
        assert s.granted == 900  # 1.00 + 0.50 overdraft = 15 minutes
        charging.terminate(system, s.session_id, request_id="od2", used=900)
    assert Pocket.objects.get(account=account, source="postpaid").balance == Decimal("-0.50")
    assert Pocket.objects.get(account=account, source="topup").balance == 0


def test_the_sweep_command_sweeps_every_tenant(setup, system):
    ChargingSettings.objects.create(grant_validity_s=30)
    with frozen(TUESDAY_10):
        charging.start(system, request_id="z", subscriber=PREPAID, service="voice", destination=MOBILE,
                       requested=60)
    out = StringIO()
    with frozen(TUESDAY_10 + timedelta(minutes=1)):
        call_command("charging", "sweep", stdout=out)
    assert "acme: 1 expired session(s) swept" in out.getvalue()
    assert ChargingSession.objects.get().state == "expired"


def test_the_lean_paths_snapshot_maps_every_subscriber_as_one_request_would(setup, clerk):
    with frozen(TUESDAY_10):
        subscriptions.transition(clerk, setup["postpaid"], "suspend", date(2026, 3, 10), reason="test")
        snapshot = charging.map_all(TUESDAY_10)
        one = charging._map(PREPAID, "msisdn", "voice", TUESDAY_10)
    assert snapshot[("msisdn", PREPAID, "voice")][0] == one
    assert ("msisdn", PREPAID, "sms") in snapshot and ("msisdn", PREPAID, "mms") not in snapshot  # no mms charge
    assert not [k for k in snapshot if k[1] == "491511111111"]  # suspended: left to the one-by-one mapping


def test_a_late_terminate_beyond_the_money_records_the_shortfall(setup, system):
    ChargingSettings.objects.create(grant_validity_s=60)
    with frozen(TUESDAY_10):
        started = charging.start(system, request_id="L1", subscriber=PREPAID, service="voice", destination=MOBILE,
                                 requested=600)
        charging.update(system, started.session_id, request_id="L2", used=540, requested=60)  # 9 min: 0.90
    with frozen(TUESDAY_10 + timedelta(minutes=5)):
        assert charging.sweep(system) == 1
        late = charging.terminate(system, started.session_id, request_id="L3", used=120)  # 11 min in all
    # 0.90 was committed at the sweep; the 2 late minutes cost 0.20, of which only 0.10 is there: the
    # session is priced 1.10 (as its rated record), 0.10 of it is short
    assert (late.code, late.used, late.charged) == ("ok", 660, Decimal("1.10"))
    session = ChargingSession.objects.get(key=started.session_id)
    assert session.shortfall == Decimal("0.10") and money() == 0
    assert RatedRecord.objects.get(record_key=f"charging:{session.key}").uncovered
    assert balances.verify() == []


def test_a_late_terminate_of_a_session_swept_with_nothing_reported_keeps_its_rated_record(setup, system):
    ChargingSettings.objects.create(grant_validity_s=60)
    with frozen(TUESDAY_10):
        s = charging.start(system, request_id="1", subscriber=PREPAID, service="voice", destination=MOBILE,
                           requested=300)
    with frozen(TUESDAY_10 + timedelta(minutes=5)):
        assert charging.sweep(system) == 1
        late = charging.terminate(system, s.session_id, request_id="2", used=61)
    assert (late.code, late.used, late.charged) == ("ok", 61, Decimal("0.20"))  # 61 s: two minutes
    assert money() == Decimal("0.80")
    record = RatedRecord.objects.get(record_key=f"charging:{s.session_id}")
    assert (record.quantity, record.charged, record.billed, record.price_micros) == (61, 61, 120, 200_000)
    assert balances.verify() == []


def test_a_late_terminate_updates_the_billed_quantity_too(setup, system):
    ChargingSettings.objects.create(grant_validity_s=60)
    with frozen(TUESDAY_10):
        s = charging.start(system, request_id="1", subscriber=PREPAID, service="voice", destination=MOBILE,
                           requested=60)
        charging.update(system, s.session_id, request_id="2", used=60, requested=60)
    with frozen(TUESDAY_10 + timedelta(minutes=5)):
        charging.sweep(system)
        charging.terminate(system, s.session_id, request_id="3", used=30)
    record = RatedRecord.objects.get(record_key=f"charging:{s.session_id}")
    assert (record.quantity, record.charged, record.billed, record.price_micros) == (90, 90, 120, 200_000)


def test_a_number_moved_after_the_snapshot_is_charged_to_its_new_holder(setup, system, clerk):
    with frozen(TUESDAY_10):
        charging.start(system, request_id="a", subscriber=PREPAID, service="voice", destination=MOBILE,
                       requested=60)  # the snapshot now holds the number
        identifier = UsageIdentifier.objects.get(value=PREPAID)
        subscriptions.end_identifier(clerk, identifier, TUESDAY_10 - timedelta(minutes=1), reason="ported")
        moved = charging.start(system, request_id="b", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=60)
    assert moved.code == "unknown_subscriber"


def test_texts_longer_than_their_columns_are_refused_and_long_request_ids_still_work(setup, system):
    with frozen(TUESDAY_10):
        with pytest.raises(ValidationFailed) as refused:
            charging.start(system, request_id="d", subscriber=PREPAID, service="voice", destination="4" * 41,
                           requested=60)
        sms = charging.charge_event(system, request_id="e" * 195, subscriber=PREPAID, service="sms",
                                    destination=MOBILE)
    assert refused.value.field == "destination"
    assert sms.code == "ok" and money() == Decimal("0.91")


def test_a_terminated_subscription_or_a_closed_account_gets_no_more_units(setup, system, clerk):
    ChargingSettings.objects.create(stop_open_sessions_when_suspended=False)  # concerns suspension only
    with frozen(TUESDAY_10):
        opened = charging.start(system, request_id="o", subscriber=PREPAID, service="voice", destination=MOBILE,
                                requested=60)
        empty = charging.start(system, request_id="z", subscriber=PREPAID, service="voice", destination=MOBILE,
                               requested=0)
        subscriptions.transition(clerk, setup["prepaid"], "terminate", date(2026, 3, 10), reason="ended")
        stopped = charging.update(system, opened.session_id, request_id="o2", used=60, requested=60)
        BillingAccount.objects.filter(number="A-1").update(status=BillingAccount.Status.CLOSED)
        closed = charging.charge_event(system, request_id="sms", subscriber="491511111111", service="sms",
                                       destination=MOBILE)
    assert (empty.code, empty.granted) == ("ok", 0)  # a session opened without asking for units
    assert (stopped.code, stopped.granted) == ("subscription_inactive", 0)
    assert (closed.code, closed.status) == ("account_closed", 403)
