"""The usage mass process end to end on a small tenant: a JSON Lines file of calls, SMS and data
is rated against the sample tariffs, allowances and money are booked, bad lines and unknown
subscribers go to suspense, and reruns, forced reruns, crashes and recycling keep every total exact."""
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from obol.balances import services as balances
from obol.balances.models import LedgerEntry, Pocket
from obol.catalog.models import PricePlan
from obol.catalog.services import load_catalog
from obol.catalog.tariff_services import load_tariffs
from obol.core.actors import Actor
from obol.core.clock import frozen
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from obol.subscriptions import services as subscriptions
from obol.usage import pipeline
from obol.usage.models import RatedRecord, SuspendedRecord, UsageFile
from tests.factories import make_account

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
ACTOR = Actor.process("test")


def prepare(tenant, system, clerk):
    """Inside `tenant`'s scope: the sample tariffs and catalog, a postpaid and a prepaid subscriber."""
    tenant.timezone = "Europe/Berlin"
    tenant.save()
    tariffs = REPO / "samples" / "tariffs" / "tariffs.yaml"
    load_tariffs(tariffs.read_text(), source=str(tariffs), actor=system)
    demo_catalog = REPO / "samples" / "demo" / "catalog.yaml"
    load_catalog(demo_catalog.read_text(), source=str(demo_catalog), actor=system)
    with frozen(date(2026, 3, 1)):
        postpaid = subscriptions.subscribe(clerk, make_account("A-1", mode="postpaid"),
                                           PricePlan.objects.get(code="mobile-s"), start_date=date(2026, 3, 1),
                                           identifiers_=[{"kind": "msisdn", "value": "491511111111"}])
        prepaid_account = make_account("A-2", mode="prepaid")
        prepaid = subscriptions.subscribe(clerk, prepaid_account, PricePlan.objects.get(code="payg"),
                                          start_date=date(2026, 3, 1),
                                          identifiers_=[{"kind": "msisdn", "value": "491522222222"}])
        balances.top_up(system, prepaid_account, Amount("1.00", "EUR"), reference="PAY-1")
    return {"postpaid": postpaid, "prepaid": prepaid}


@pytest.fixture
def setup(in_tenant, system, clerk):
    return prepare(in_tenant, system, clerk)


def write_jsonl(path: Path, rows: list[dict], bad_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in rows] + list(bad_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def call(n, msisdn, start, seconds, destination="4930123456"):
    return {"id": f"c{n}", "service": "voice", "identifier": msisdn, "start": start, "destination": destination,
            "duration_s": seconds}


CALLS = [call(i, "491511111111", f"2026-03-1{i % 9}T10:{i:02d}:00Z", 60 + i) for i in range(1, 30)]


def totals():
    """What a billing clerk would compare: records, money, included units, every balance, entries."""
    records = RatedRecord.objects.order_by("record_key")
    return (records.count(), sum(r.price_micros for r in records), sum(r.included for r in records),
            sorted((p.account.number, p.label, p.balance) for p in Pocket.objects.select_related("account")),
            LedgerEntry.objects.filter(kind="debit").count())


def test_a_file_is_rated_once_and_a_rerun_changes_nothing(setup, tmp_path):
    path = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    first = pipeline.import_file(ACTOR, path, fmt="jsonl")
    assert (first.state, first.read, first.rated, first.suspended) == ("done", 29, 29, {})
    after_first = totals()
    assert after_first[2] > 0  # the plan's minutes allowance paid for some of it
    again = pipeline.import_file(ACTOR, path, fmt="jsonl")
    assert again.state == "skipped" and totals() == after_first
    forced = pipeline.import_file(ACTOR, path, fmt="jsonl", force=True)
    assert forced.rated == 0 and forced.suspended == {"duplicate": 29} and totals()[:4] == after_first[:4]


def test_what_accrued_is_kept_per_record_for_the_invoice(setup, tmp_path):
    calls = CALLS[:5] + [call(40 + i, "491522222222", f"2026-03-1{i}T11:00:00Z", 60) for i in range(3)] + [
        call(50, "491511111111", "2026-03-20T12:00:00Z", 18_600)]  # 310 minutes: beyond the 300 included
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "calls.jsonl", calls), fmt="jsonl")
    postpaid = RatedRecord.objects.filter(account__number="A-1")
    prepaid = RatedRecord.objects.filter(account__number="A-2")
    assert postpaid.count() == 6 and prepaid.count() == 3
    assert sum(r.price_micros for r in postpaid) > 0
    assert all(r.accrued_micros == r.price_micros for r in postpaid)  # postpaid: every price is owed
    assert all(r.accrued_micros == 0 for r in prepaid)  # prepaid: paid from the pocket, or uncovered
    assert sum(r.price_micros for r in prepaid) > 0  # (they did cost something)


def test_bad_lines_and_unknown_subscribers_are_suspended_with_their_line(setup, tmp_path):
    rows = [CALLS[0], call(99, "491599999999", "2026-03-10T10:00:00Z", 30), CALLS[1]]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows, bad_lines=('{"id": "x", "service": "voice"', ))
    summary = pipeline.import_file(ACTOR, path, fmt="jsonl")
    assert summary.rated == 2 and summary.suspended == {"malformed_line": 1, "unknown_identifier": 1}
    suspended = {s.line: (s.reason, s.message) for s in SuspendedRecord.objects.all()}
    assert suspended[2][0] == "unknown_identifier" and "491599999999" in suspended[2][1]
    assert suspended[4][0] == "malformed_line"
    raw = {s.line: s.raw for s in SuspendedRecord.objects.all()}  # the original lines, as in the file
    assert raw == {2: path.read_text().splitlines()[1], 4: path.read_text().splitlines()[3]}
    assert UsageFile.objects.get().suspended == 2


def test_an_unknown_msisdn_is_rated_after_its_subscription_is_added_and_recycled(setup, tmp_path, clerk):
    path = write_jsonl(tmp_path / "late.jsonl", [call(1, "491533333333", "2026-03-10T10:00:00Z", 120)])
    assert pipeline.import_file(ACTOR, path, fmt="jsonl").suspended == {"unknown_identifier": 1}
    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, make_account("A-3", mode="postpaid"), PricePlan.objects.get(code="payg"),
                                start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491533333333"}])
    call_command("usage", "recycle")
    record = RatedRecord.objects.get()
    assert record.quantity == 120 and record.price_micros > 0
    assert SuspendedRecord.objects.get().state == "recycled"
    assert pipeline.recycle(ACTOR).tried == 0


def test_a_crash_in_the_middle_then_a_rerun_gives_the_clean_totals(setup, tmp_path, monkeypatch, other_tenant):
    path = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    real_book = pipeline._book
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_book(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_book", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=5)
    assert UsageFile.objects.get().state == "importing" and RatedRecord.objects.count() == 10
    monkeypatch.setattr(pipeline, "_book", real_book)
    resumed = pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=5)
    assert resumed.state == "done" and UsageFile.objects.get().rated == 29
    after_crash = totals()
    with tenant_context(other_tenant):  # the same file, imported cleanly in a twin tenant
        prepare(other_tenant, ACTOR, ACTOR)
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=5)
        assert totals() == after_crash


def test_prepaid_usage_beyond_the_money_is_rated_and_flagged(setup, tmp_path):
    calls = [call(i, "491522222222", f"2026-03-10T1{i}:00:00Z", 600) for i in range(1, 4)]
    summary = pipeline.import_file(ACTOR, write_jsonl(tmp_path / "prepaid.jsonl", calls), fmt="jsonl")
    # Tuesday, 12:00-14:00 in Berlin: peak, 10 minutes to a Berlin number at 0.09 = 0.90 each.
    # 1.00 EUR pays the first; the next two are rated, flagged and not debited.
    assert summary.rated == 3 and summary.uncovered == 2 and summary.charged_micros == 2_700_000
    money = Pocket.objects.get(account__number="A-2", source="topup")
    assert money.balance == Decimal("0.10")
    assert balances.verify() == []


def test_a_file_above_the_suspense_threshold_e_mails_an_alert(setup, tmp_path, mail_to_smtp,
                                                            django_capture_on_commit_callbacks):
    from obol.notifications import services as alerts
    from obol.notifications.models import Alert

    alerts.update_settings(ACTOR, email_recipients="noc@operator.test", suspense_threshold_percent=Decimal(10))
    rows = [CALLS[0]] + [call(100 + i, "491599999999", "2026-03-10T10:00:00Z", 30) for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        summary = pipeline.import_file(ACTOR, write_jsonl(tmp_path / "bad-day.jsonl", rows), fmt="jsonl")
    assert summary.suspended == {"unknown_identifier": 3}
    alert = Alert.objects.get(kind="suspense_rate")
    assert "bad-day.jsonl" in alert.reference
    [mail] = mail_to_smtp.messages
    assert mail["to"] == ["noc@operator.test"] and "suspense" in mail["message"]["Subject"].lower()


def test_graduated_data_tiers_count_the_cycles_earlier_files(setup, tmp_path, clerk):
    """data-national: the first 1024 MB of a cycle at 0.01 EUR/MB, beyond at 0.005 EUR/MB."""
    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, make_account("A-9", mode="postpaid"), PricePlan.objects.get(code="payg"),
                                start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491544444444"}])
    mb = 1024 * 1024

    def data(n, day, megabytes):
        return {"id": f"d{n}", "service": "data", "identifier": "491544444444", "start": f"2026-03-{day}T12:00:00Z",
                "volume_bytes": megabytes * mb}

    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "day1.jsonl", [data(1, 10, 1000)]), fmt="jsonl")
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "day2.jsonl", [data(2, 11, 48)]), fmt="jsonl")
    april = dict(data(3, 10, 48), start="2026-04-10T12:00:00Z")  # a new cycle starts again at 0.01
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "april.jsonl", [april]), fmt="jsonl")
    prices = dict(RatedRecord.objects.filter(account__number="A-9").values_list("record_key", "price_micros"))
    assert prices == {"jsonl:d1": 10_000_000,  # 1000 MB x 0.01
                      "jsonl:d2": 360_000,     # 24 MB x 0.01 + 24 MB x 0.005, not 48 x 0.01
                      "jsonl:d3": 480_000}     # 48 MB x 0.01 in April


def test_rerate_after_a_tariff_correction_charges_the_new_price_once(setup, tmp_path, clerk):
    from obol.catalog.rate_models import Rate

    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, make_account("A-5", mode="postpaid"), PricePlan.objects.get(code="payg"),
                                start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491555555555"}])
    calls = [call(100 + i, "491555555555", f"2026-03-1{i % 9}T10:{i:02d}:00Z", 60 + i) for i in range(1, 12)]
    summary = pipeline.import_file(ACTOR, write_jsonl(tmp_path / "calls.jsonl", CALLS + calls), fmt="jsonl")
    assert summary.rated == 40, summary
    before = totals()
    accrued_before = Pocket.objects.get(account__number="A-5", source="postpaid").balance
    charged_before = sum(RatedRecord.objects.values_list("price_micros", flat=True))
    assert charged_before > 0
    rates = Rate.objects.filter(version__table__code="voice-national", price__isnull=False)
    for rate_row in rates:  # a correction: every voice price doubled
        rate_row.price = rate_row.price * 2
        rate_row.connection_fee = rate_row.connection_fee * 2
        rate_row.minimum_charge = rate_row.minimum_charge * 2
        rate_row.save()
    call_command("usage", "rerate", "--from", "2026-03-01", "--to", "2026-04-01")
    after = totals()
    assert after[0] == before[0] == 40 and after[2] == before[2]  # same records, same included minutes
    charged_after = sum(RatedRecord.objects.values_list("price_micros", flat=True))
    assert charged_after == 2 * charged_before
    accrued_after = Pocket.objects.get(account__number="A-5", source="postpaid").balance
    assert accrued_after == 2 * accrued_before  # the old charge given back, the new one booked once
    assert balances.verify() == []


def test_a_crash_with_prepaid_money_resumes_to_the_clean_totals(setup, tmp_path, monkeypatch, other_tenant):
    """Prepaid calls debit the money pockets per chunk; a resumed run must neither skip a chunk's
    debit nor cover a record a clean run would have flagged."""
    calls = [call(200 + i, "491522222222", f"2026-03-10T{10 + i}:00:00Z", 60) for i in range(13)]
    path = write_jsonl(tmp_path / "prepaid.jsonl", calls)
    real_book = pipeline._book
    seen = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_book(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_book", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=1)
    monkeypatch.setattr(pipeline, "_book", real_book)
    pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=1)
    after_crash = totals() + (sorted(RatedRecord.objects.values_list("record_key", "uncovered")),)
    with tenant_context(other_tenant):
        prepare(other_tenant, ACTOR, ACTOR)
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=1)
        clean = totals() + (sorted(RatedRecord.objects.values_list("record_key", "uncovered")),)
    assert after_crash == clean
    # Tuesday in Berlin: 9 peak minutes at 0.09 and 3 off-peak at 0.05 make 0.96 of the 1.00 EUR;
    # the 13th minute (0.05) does not fit: rated, flagged, not debited.
    assert [uncovered for _, uncovered in clean[-1]].count(True) == 1
    assert Pocket.objects.get(account__number="A-2", source="topup").balance == Decimal("0.04")


def test_rerate_refuses_when_records_would_lose_their_tariff(setup, tmp_path):
    from obol.catalog.rate_models import RateTable
    from obol.core.errors import ValidationFailed

    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "calls.jsonl", CALLS[:3]), fmt="jsonl")
    before = totals()
    RateTable.objects.filter(code="voice-national").update(code="voice-renamed")  # a tariff broken by mistake
    with pytest.raises(ValidationFailed, match="rerate refused: .*3 record\\(s\\) no_rate_table"):
        pipeline.rerate(ACTOR, start=date(2026, 3, 1), end=date(2026, 4, 1))
    assert totals() == before  # nothing deleted, nothing booked


def test_allowance_takes_are_booked_per_pocket_and_chunk_and_given_back_by_rerate(setup, tmp_path):
    """29 calls of 61..89 s inside the 300 included minutes of mobile-s, stored in chunks of 10:
    the voice allowance gets one debit per chunk (not one per call) whose sum is what the calls
    took; each call keeps its own take; a rerate gives the seconds back and takes them again."""
    path = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    summary = pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=10)
    assert summary.rated == 29 and summary.charged_micros == 0
    voice = Pocket.objects.get(account__number="A-1", services=["voice"])
    seconds = sum(60 + i for i in range(1, 30))  # 2175 s, all included
    debits = list(LedgerEntry.objects.filter(pocket=voice, kind="debit").order_by("id"))
    assert [d.reference for d in debits] == [f"usage-file:{UsageFile.objects.get().pk}:chunk:{n}" for n in range(3)]
    assert sum(-d.amount for d in debits) == seconds and voice.balance == 300 * 60 - seconds
    takes = dict(RatedRecord.objects.values_list("record_key", "takes"))
    assert takes["jsonl:c7"] == f"{voice.pk}:67" and len(takes) == 29
    call_command("usage", "rerate", "--from", "2026-03-01", "--to", "2026-04-01")
    voice.refresh_from_db()
    assert voice.balance == 300 * 60 - seconds
    credits = LedgerEntry.objects.filter(pocket=voice, kind="credit")
    assert [c.amount for c in credits] == [seconds]
    assert balances.verify() == []


def test_a_file_being_imported_by_another_run_is_reported_busy_and_left_alone(setup, tmp_path, in_tenant):
    """Two daily jobs started at once: the second finds the file held and reports it busy, without
    storing anything; once the first is done the file imports normally."""
    import threading

    from django.db import connection

    from obol.core.locks import exclusive

    path = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def other_run():
        with tenant_context(in_tenant), exclusive("usage file", pipeline.checksum(path)[:16]):
            held.set()
            release.wait(30)
        connection.close()
        done.set()

    threading.Thread(target=other_run).start()
    assert held.wait(30)
    try:
        busy = pipeline.import_file(ACTOR, path, fmt="jsonl")
    finally:
        release.set()
    assert done.wait(30)
    assert busy.state == "busy" and "another run" in busy.note
    assert RatedRecord.objects.count() == 0 and UsageFile.objects.count() == 0
    assert pipeline.import_file(ACTOR, path, fmt="jsonl").rated == 29


def test_rating_a_file_in_parts_of_accounts_gives_what_rating_it_whole_gives(setup, tmp_path, other_tenant):
    """A big file is rated in parts of accounts to bound memory: allowances, tiers and prepaid money
    are per subscription or account, so the parts give exactly the totals of one pass."""
    prepaid_calls = [call(300 + i, "491522222222", f"2026-03-10T{10 + i}:00:00Z", 90) for i in range(12)]
    path = write_jsonl(tmp_path / "mixed.jsonl", CALLS + prepaid_calls)
    in_parts = pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=4, part_size=10)
    parted = totals() + (sorted(RatedRecord.objects.values_list("record_key", "price_micros", "uncovered")),)
    with tenant_context(other_tenant):
        prepare(other_tenant, ACTOR, ACTOR)
        whole = pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=4)
        assert totals() + (sorted(RatedRecord.objects.values_list("record_key", "price_micros", "uncovered")),) \
            == parted
    assert in_parts.rated == whole.rated == 41 and in_parts.uncovered == whole.uncovered > 0
    assert in_parts.charged_micros == whole.charged_micros > 0


def test_account_parts_keep_each_account_whole_and_in_order():
    import polars as pl

    frame = pl.DataFrame({"account_id": [i % 7 for i in range(100)], "n": list(range(100))})
    parts = list(pipeline.account_parts(frame, 30))
    assert 2 <= len(parts) <= 4 and sum(p.height for p in parts) == 100  # by a hash of the account
    owners = [set(p["account_id"]) for p in parts]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])  # an account in one part
    assert all(p["n"].is_sorted() for p in parts)
    assert list(pipeline.account_parts(frame, 100)) == [frame]


def test_a_corrected_price_in_force_is_charged_after_rerate(setup, tmp_path, clerk):
    """A 120 s call to a Berlin landline on Tuesday 10 March, 11:00 in Berlin (peak, 0.09/min,
    60/60) costs 0.18; the administrator corrects the peak price to 0.19 in the version in force,
    reruns the period, and the call costs 0.38 - charged once."""
    import shutil

    with frozen(date(2026, 3, 1)):
        subscriptions.subscribe(clerk, make_account("A-5", mode="postpaid"), PricePlan.objects.get(code="payg"),
                                start_date=date(2026, 3, 1),
                                identifiers_=[{"kind": "msisdn", "value": "491555555555"}])
    path = write_jsonl(tmp_path / "one.jsonl", [call(500, "491555555555", "2026-03-10T10:00:00Z", 120)])
    assert pipeline.import_file(ACTOR, path, fmt="jsonl").charged_micros == 180_000
    for name in ("tariffs.yaml", "prefixes.csv"):
        shutil.copy(REPO / "samples" / "tariffs" / name, tmp_path / name)
    source = tmp_path / "tariffs.yaml"
    source.write_text(source.read_text().replace("{group: national-fixed, band: peak, price: 0.09",
                                                 "{group: national-fixed, band: peak, price: 0.19"))
    call_command("tariffs", "load", str(source), "--correct", "peak price typo", "--effective-from", "2026-03-10")
    call_command("usage", "rerate", "--from", "2026-03-01", "--to", "2026-04-01", "--account", "A-5")
    assert RatedRecord.objects.get(account__number="A-5").price_micros == 380_000
    assert Pocket.objects.get(account__number="A-5", source="postpaid").balance == Decimal("-0.38")
    assert balances.verify() == []


def test_records_rated_before_takes_existed_get_them_from_their_ledger_debits(setup, tmp_path):
    """Migration 0004: before 0003 each record's allowance take was a ledger debit referenced by
    its key and `takes` did not exist; the migration rebuilds `takes` from those debits, so
    rerate gives the units back instead of taking them twice."""
    import importlib

    from django.apps import apps

    fill = importlib.import_module("obol.usage.migrations.0004_fill_rated_record_takes").fill_takes
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "calls.jsonl", CALLS[:5]), fmt="jsonl")
    voice = Pocket.objects.get(account__number="A-1", services=["voice"])
    expected = dict(RatedRecord.objects.values_list("record_key", "takes"))
    RatedRecord.objects.update(takes="")  # an old row
    for record in RatedRecord.objects.all():  # its old per-record debit
        LedgerEntry.objects.create(tenant=voice.tenant, pocket=voice, kind="debit", amount=-record.included,
                                   balance_after=0, reason="usage", reference=record.record_key,
                                   actor_kind="process", actor_label="old import")
    fill(apps, None)
    assert dict(RatedRecord.objects.values_list("record_key", "takes")) == expected
    assert expected["jsonl:c1"] == f"{voice.pk}:61"


def test_prepaid_money_that_does_not_fill_a_micro_unit_is_not_counted(in_tenant, system):
    """0.0000015 BTC covers 1 micro-unit of usage (rounded down), never 2: batch rating must not
    call usage covered that booking would then refuse."""
    account = make_account("BTC-1", currency="BTC", mode="prepaid")
    balances.top_up(system, account, Amount("0.0000015", "BTC"), reference="P1")
    money = pipeline._money([account.pk], {account.pk: "prepaid"}, {account.pk: "BTC"})
    assert money["available_micros"].to_list() == [1]


MB = 1024 * 1024
TIER_ROWS = [  # data-national: the first 1024 MB of a cycle at 0.01/MB, beyond at 0.005/MB
    {"id": "d1", "service": "data", "identifier": "491544444444", "start": "2026-03-10T12:00:00Z",
     "volume_bytes": 1000 * MB},
    {"id": "d2", "service": "data", "identifier": "491544444444", "start": "2026-03-11T12:00:00Z",
     "volume_bytes": 48 * MB},
    {"id": "d3", "service": "data", "identifier": "491544444444", "start": "2026-03-12T12:00:00Z",
     "volume_bytes": 48 * MB},
    {"id": "d4", "service": "data", "identifier": "491566666666", "start": "2026-03-05T12:00:00Z",
     "volume_bytes": 10 * MB},  # another account's record, earlier than all of B's
]


def data_subscribers(clerk):
    with frozen(date(2026, 3, 1)):
        for number, msisdn in (("B-1", "491544444444"), ("C-1", "491566666666")):
            subscriptions.subscribe(clerk, make_account(number, mode="postpaid"), PricePlan.objects.get(code="payg"),
                                    start_date=date(2026, 3, 1), identifiers_=[{"kind": "msisdn", "value": msisdn}])


def test_tiers_count_a_subscriptions_own_earlier_usage_whatever_other_accounts_send(setup, tmp_path, clerk):
    """File 2 holds C's record of the 5th and B's 48 MB of the 12th: B's 1048 MB of the first file
    count for B's tier (24 MB + 24 MB beyond 1024 at 0.005 = 0.24), C's earlier date does not hide them."""
    data_subscribers(clerk)
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "f1.jsonl", TIER_ROWS[:2]), fmt="jsonl")
    pipeline.import_file(ACTOR, write_jsonl(tmp_path / "f2.jsonl", TIER_ROWS[2:]), fmt="jsonl")
    prices = dict(RatedRecord.objects.values_list("record_key", "price_micros"))
    assert prices == {"jsonl:d1": 10_000_000, "jsonl:d2": 360_000, "jsonl:d3": 240_000, "jsonl:d4": 100_000}


def test_a_resumed_file_counts_the_tiers_of_its_own_stored_chunks(setup, tmp_path, clerk, monkeypatch,
                                                                   other_tenant):
    data_subscribers(clerk)
    path = write_jsonl(tmp_path / "data.jsonl", TIER_ROWS)
    real_book, seen = pipeline._book, {"n": 0}

    def crash_on_second_chunk(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_book(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_book", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=2)
    monkeypatch.setattr(pipeline, "_book", real_book)
    pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=2)
    resumed = dict(RatedRecord.objects.values_list("record_key", "price_micros"))
    assert resumed == {"jsonl:d1": 10_000_000, "jsonl:d2": 360_000, "jsonl:d3": 240_000, "jsonl:d4": 100_000}
    with tenant_context(other_tenant):
        prepare(other_tenant, ACTOR, ACTOR)
        data_subscribers(ACTOR)
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=2)
        assert dict(RatedRecord.objects.values_list("record_key", "price_micros")) == resumed


def test_a_file_stopped_by_a_refused_booking_is_reported_and_resumes_cleanly(setup, tmp_path, monkeypatch,
                                                                             other_tenant):
    """Money spent elsewhere between rating and booking: that file stops with a failed summary and
    an alert (the job goes on with its other files); running it again resumes to the clean totals."""
    from obol.core.errors import Conflict
    from obol.notifications.models import Alert

    path = write_jsonl(tmp_path / "calls.jsonl", CALLS)
    from obol.balances import batch

    real, seen = batch.book_usage, {"n": 0}

    def refuse_second(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] == 2:
            raise Conflict("pocket 1 holds less than rating planned", code="pocket_changed")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "book_usage", refuse_second)
    stopped = pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=10)
    assert stopped.state == "failed" and "running it again resumes" in stopped.note
    assert Alert.objects.get().kind == "import_interrupted" and RatedRecord.objects.count() == 10
    monkeypatch.setattr(batch, "book_usage", real)
    assert pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=10).state == "done"
    after = totals()
    with tenant_context(other_tenant):
        prepare(other_tenant, ACTOR, ACTOR)
        pipeline.import_file(ACTOR, path, fmt="jsonl", chunk_size=10)
        assert totals() == after
