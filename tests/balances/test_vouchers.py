"""Vouchers as a billing clerk sees them: a batch is generated (codes shown once, never stored),
a code is redeemed once into the right pocket, refusals name their reason, guessing is rate
limited, the printing CSV and the command line, the API, and 32 concurrent redemptions."""
import csv
import io
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from obol.api.auth import create_api_key
from obol.balances import services, vouchers
from obol.balances.models import LedgerEntry, Pocket, RedemptionFailure, Source, Voucher, VoucherBatch
from obol.catalog.models import Service
from obol.core.actors import Actor
from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.errors import Forbidden, IllegalTransition, ObolError, ValidationFailed
from obol.core.money import Amount
from obol.core.tenancy import all_tenants, tenant_context
from tests.factories import make_account
from tests.support.api_client import ApiClient
from tests.support.race import race

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
CODE_FORMAT = re.compile(r"^[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){3}$")
END_2027 = date(2027, 12, 31)


@pytest.fixture(autouse=True)
def clock():
    with frozen(NOW):
        yield


TEN_EUR = Amount("10.00", "EUR")


def generate(actor, count=3, value=TEN_EUR, expires=END_2027, **extra):
    return vouchers.generate_batch(actor, count=count, value=value, expires_at=expires, **extra)


def refusal(call) -> ObolError:
    with pytest.raises(ObolError) as caught:
        call()
    return caught.value


def every_stored_text() -> str:
    """All rows of every table, as text: what `grep` on a database dump would search."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def assert_codes_not_stored(codes):
    dump = every_stored_text()
    for code in codes:
        assert code not in dump and code.replace("-", "") not in dump
    assert codes and all(code[-4:] for code in codes)


# -- generation ----------------------------------------------------------------------------------

def test_a_batch_of_100_distinct_readable_codes_stored_only_as_hashes(in_tenant, system):
    batch, codes = generate(system, count=100, name="Spring 2026")
    assert len(codes) == 100 and len(set(codes)) == 100
    assert all(CODE_FORMAT.match(code) for code in codes)
    assert not set("01OI") & set("".join(codes))
    assert (batch.name, batch.issued, batch.unit) == ("Spring 2026", 100, "EUR")
    assert batch.value == Decimal("10.00")
    assert batch.expires_at == datetime(2028, 1, 1, tzinfo=timezone.utc)  # valid through 31 Dec 2027
    rows = list(Voucher.objects.filter(batch=batch).values_list("hint", "code_hash"))
    assert sorted(hint for hint, _ in rows) == sorted(code[-4:] for code in codes)
    assert len({h for _, h in rows}) == 100 and all(len(h) == 64 for _, h in rows)
    assert_codes_not_stored(codes)
    assert history(batch).first().action == "voucher_batch.generate"


def test_codes_carry_80_random_bits():
    assert len(vouchers.ALPHABET) == 32 and vouchers.CODE_LENGTH * 5 == 80
    assert len({vouchers.new_code() for _ in range(2000)}) == 2000


def test_batches_get_names_and_refuse_what_cannot_be_right(in_tenant, system, clerk):
    first, _ = generate(system, count=1)
    second, _ = generate(system, count=1)
    assert (first.name, second.name) == ("VB-000001", "VB-000002")
    cases = [
        (dict(count=0), "count"),
        (dict(count=vouchers.MAX_BATCH + 1), "count"),
        (dict(value=Amount("10.005", "EUR")), "value"),
        (dict(value=Amount("0", "EUR")), "value"),
        (dict(value=Amount("1.5", "sms")), "value"),
        (dict(expires=date(2026, 3, 9)), "expires_at"),
        (dict(validity_days=0), "validity_days"),
        (dict(services=["voice"]), "services"),
        (dict(name="VB-000001"), "name"),
    ]
    for extra, field in cases:
        error = refusal(lambda extra=extra: generate(system, **{"count": 2, **extra}))
        assert isinstance(error, ValidationFailed) and error.field == field, (extra, error.message)
    assert isinstance(refusal(lambda: generate(clerk)), Forbidden)  # printing value is for admins
    assert VoucherBatch.objects.count() == 2 and Voucher.objects.count() == 2


# -- redemption ----------------------------------------------------------------------------------

def test_a_60_minute_voucher_gives_3600_seconds_shown_as_minutes(in_tenant, system, clerk):
    Service.objects.create(code="voice", name="Voice", kind="voice", unit="second")
    batch, (code, _) = generate(system, count=2, value=Amount(60, "minute"), validity_days=30,
                                services=["voice"], name="60 minutes")
    account = make_account(mode="prepaid")
    pocket = vouchers.redeem(clerk, account, code.lower().replace("-", " "), ip="203.0.113.7")
    pocket.refresh_from_db()
    assert (pocket.account, pocket.source, pocket.unit, pocket.display_unit) == (account, Source.VOUCHER,
                                                                                 "second", "minute")
    assert pocket.balance == pocket.granted == 3600
    assert Amount(pocket.balance, pocket.unit).convert("minute") == Amount(60, "minute")
    assert pocket.valid_until == NOW + timedelta(days=30) and pocket.services == ["voice"]
    assert pocket.label == "60 minutes" and pocket.grant_key.startswith("voucher:")
    entry = LedgerEntry.objects.get(pocket=pocket)
    assert (entry.kind, entry.amount, entry.actor_label) == ("grant", 3600, "clerk@acme")
    voucher = Voucher.objects.get(pocket=pocket)
    assert (voucher.account, voucher.redeemed_at, voucher.redeemed_ip, voucher.hint) == (
        account, NOW, "203.0.113.7", code[-4:])
    assert voucher.state() == "redeemed" and vouchers.counts(batch) == {
        "issued": 2, "redeemed": 1, "expired": 0, "available": 1}
    event = history(account).get(action="account.voucher_redeemed")
    assert event.changes["value"] == "60 minute" and event.changes["hint"] == code[-4:]
    spent = services.spend(clerk, account, Amount(90, "second"), reference="call-1", service="voice")
    assert [e.pocket_id for e in spent.entries] == [pocket.pk]
    assert services.verify() == []


def test_a_10_eur_voucher_tops_up_a_prepaid_account_it_can_spend(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1)
    account = make_account(mode="prepaid", credit_limit=Decimal(0))
    pocket = vouchers.redeem(clerk, account, code)
    assert (pocket.unit, pocket.balance, pocket.valid_until) == ("EUR", Decimal("10.00"), None)
    services.spend(clerk, account, Amount("4.00", "EUR"), reference="sms-bundle")
    pocket.refresh_from_db()
    assert pocket.balance == Decimal("6.00")
    with pytest.raises(services.SpendRefused):
        services.spend(clerk, account, Amount("6.01", "EUR"), reference="too-much")


def test_a_voucher_is_used_once(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1)
    first, second = make_account("A-1"), make_account("A-2")
    vouchers.redeem(clerk, first, code)
    for account in (first, second):
        error = refusal(lambda account=account: vouchers.redeem(clerk, account, code))
        assert (error.code, error.status, error.field) == ("voucher_used", 409, "code")
    assert Pocket.objects.filter(source=Source.VOUCHER).count() == 1
    assert not Pocket.objects.filter(account=second).exists()
    assert Voucher.objects.get().account == first


def test_expired_blocked_and_cancelled_vouchers_are_refused(in_tenant, system, clerk):
    account = make_account()
    _, (last_day, day_after) = generate(system, count=2, expires=date(2026, 3, 31))
    with frozen(datetime(2026, 3, 31, 23, 59, tzinfo=timezone.utc)):
        assert vouchers.redeem(clerk, account, last_day).balance == Decimal("10.00")
    with frozen(datetime(2026, 4, 1, tzinfo=timezone.utc)):
        error = refusal(lambda: vouchers.redeem(clerk, account, day_after))
    assert error.code == "voucher_expired" and "2026-03-31" in error.message

    batch, (code,) = generate(system, count=1)
    vouchers.block_batch(system, batch, reason="box of cards stolen")
    assert refusal(lambda: vouchers.redeem(clerk, account, code)).code == "voucher_blocked"
    vouchers.unblock_batch(system, batch, reason="box found")
    assert vouchers.redeem(clerk, account, code).balance == Decimal("10.00")

    cancelled, (code,) = generate(system, count=1)
    vouchers.cancel_batch(system, cancelled, reason="campaign withdrawn")
    assert refusal(lambda: vouchers.redeem(clerk, account, code)).code == "voucher_blocked"
    with pytest.raises(IllegalTransition):
        vouchers.unblock_batch(system, cancelled)
    assert isinstance(refusal(lambda: vouchers.block_batch(clerk, batch)), Forbidden)
    assert [e.action for e in history(batch)] == ["voucher_batch.active", "voucher_batch.blocked",
                                                  "voucher_batch.generate"]
    assert Pocket.objects.filter(account=account).count() == 2


def test_another_tenants_voucher_is_simply_invalid(tenant, other_tenant, system, clerk):
    with tenant_context(other_tenant):
        _, (theirs,) = generate(system, count=1)
    with tenant_context(tenant):
        account = make_account()
        unknown = refusal(lambda: vouchers.redeem(clerk, account, theirs))
        made_up = refusal(lambda: vouchers.redeem(clerk, account, "ABCD-EFGH-JKLM-NPQR"))
        malformed = refusal(lambda: vouchers.redeem(clerk, account, "not a code"))
        assert not Pocket.objects.exists()
    assert {(e.code, e.status, e.message) for e in (unknown, made_up, malformed)} == {
        ("voucher_invalid", 422, "this voucher code is not valid")}
    with tenant_context(other_tenant):
        assert Voucher.objects.get().redeemed_at is None


def test_money_vouchers_only_go_to_accounts_in_their_currency(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1, value=Amount("10.00", "USD"))
    euro, dollar = make_account("A-EUR"), make_account("A-USD", currency="USD")
    error = refusal(lambda: vouchers.redeem(clerk, euro, code))
    assert error.code == "voucher_currency_mismatch" and "USD" in error.message
    assert vouchers.redeem(clerk, dollar, code).unit == "USD"


def test_read_only_staff_cannot_redeem(in_tenant, system, reader):
    _, (code,) = generate(system, count=1)
    assert isinstance(refusal(lambda: vouchers.redeem(reader, make_account(), code)), Forbidden)
    assert Voucher.objects.get().redeemed_at is None and not RedemptionFailure.objects.exists()


# -- rate limit ----------------------------------------------------------------------------------

def guess(actor, account, ip=None):
    return refusal(lambda: vouchers.redeem(actor, account, vouchers.new_code(), ip=ip)).code


def test_five_failures_lock_the_account_for_15_minutes(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1)
    account, neighbour = make_account("A-1"), make_account("A-2")
    assert [guess(clerk, account) for _ in range(5)] == ["voucher_invalid"] * 5
    error = refusal(lambda: vouchers.redeem(clerk, account, code))  # even the right code now
    assert (error.code, error.status) == ("too_many_attempts", 429)
    assert "2026-03-10T12:15:00" in error.message
    assert RedemptionFailure.objects.filter(account=account).count() == 5  # a refused attempt is not counted
    assert Voucher.objects.get().redeemed_at is None
    assert guess(clerk, neighbour) == "voucher_invalid"  # other accounts are not locked
    with frozen(NOW + timedelta(minutes=15, seconds=1)):
        assert vouchers.redeem(clerk, account, code).balance == Decimal("10.00")


def test_five_failures_from_one_address_lock_that_address(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1)
    accounts = [make_account(f"A-{i}") for i in range(7)]
    assert [guess(clerk, a, ip="198.51.100.9") for a in accounts[:5]] == ["voucher_invalid"] * 5
    locked = refusal(lambda: vouchers.redeem(clerk, accounts[5], code, ip="198.51.100.9"))
    assert locked.code == "too_many_attempts"
    assert vouchers.redeem(clerk, accounts[5], code, ip="198.51.100.10").balance == Decimal("10.00")


def test_a_success_resets_nobodys_counter(in_tenant, system, clerk):
    _, (code,) = generate(system, count=1)
    guesser, honest = make_account("A-1"), make_account("A-2")
    for _ in range(4):
        guess(clerk, guesser, ip="192.0.2.1")
    vouchers.redeem(clerk, honest, code, ip="192.0.2.1")
    assert guess(clerk, guesser, ip="192.0.2.1") == "voucher_invalid"  # the fifth
    assert guess(clerk, guesser) == "too_many_attempts"
    assert guess(clerk, honest, ip="192.0.2.1") == "too_many_attempts"  # the address has 5 too
    assert guess(clerk, honest, ip="192.0.2.2") == "voucher_invalid"
    assert refusal(lambda: vouchers.redeem(clerk, honest, code, ip="not-an-address")).field == "ip"


def test_prune_keeps_what_still_counts(in_tenant, system, clerk):
    account = make_account()
    with frozen(NOW - timedelta(days=40)):
        guess(clerk, account)
    guess(clerk, account)
    assert vouchers.prune_failures(system) == 1
    assert RedemptionFailure.objects.count() == 1


# -- printing and the command line ---------------------------------------------------------------

def test_the_printing_csv_has_code_value_unit_and_last_day(in_tenant, system):
    money, money_codes = generate(system, count=2, value=Amount(10, "EUR"))
    minutes, minute_codes = generate(system, count=1, value=Amount(60, "minute"), expires=date(2026, 6, 30))
    out = io.StringIO()
    vouchers.write_csv(out, money, money_codes)
    assert out.getvalue().splitlines() == ["code,value,unit,expires"] + [
        f"{code},10.00,EUR,2027-12-31" for code in money_codes]
    assert vouchers.csv_rows(minutes, minute_codes) == [
        {"code": minute_codes[0], "value": "60", "unit": "minute", "expires": "2026-06-30"}]


def test_the_command_writes_the_codes_once_and_they_redeem(in_tenant, system, clerk, tmp_path):
    path = tmp_path / "spring.csv"
    out = io.StringIO()
    call_command("vouchers", "generate", "--tenant", "acme", "--count", "5", "--value", "10.00",
                 "--unit", "EUR", "--expires", "2027-12-31", "--name", "Spring cards", "--csv", str(path),
                 stdout=out)
    assert "only time they are shown" in out.getvalue() and "Spring cards" in out.getvalue()
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 5
    assert {(r["value"], r["unit"], r["expires"]) for r in rows} == {("10.00", "EUR", "2027-12-31")}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert_codes_not_stored([r["code"] for r in rows])
    assert vouchers.redeem(clerk, make_account(), rows[0]["code"]).balance == Decimal("10.00")

    with pytest.raises(CommandError, match="exists already"):
        call_command("vouchers", "generate", "--count", "5", "--value", "1", "--expires", "2027-12-31",
                     "--csv", str(path))
    with pytest.raises(CommandError, match="more decimals"):
        call_command("vouchers", "generate", "--count", "5", "--value", "1.001", "--expires", "2027-12-31",
                     "--csv", str(tmp_path / "bad.csv"))
    assert not (tmp_path / "bad.csv").exists() and VoucherBatch.objects.count() == 1

    call_command("vouchers", "block", "Spring cards", "--reason", "stolen", stdout=io.StringIO())
    blocked = refusal(lambda: vouchers.redeem(clerk, make_account("A-2"), rows[1]["code"]))
    assert blocked.code == "voucher_blocked"
    listing = io.StringIO()
    call_command("vouchers", "list", stdout=listing)
    assert "Spring cards\t10.00 EUR\tblocked\tuntil 2027-12-31" in listing.getvalue()
    assert "issued 5\tredeemed 1\texpired 0\tavailable 0" in listing.getvalue()
    with pytest.raises(CommandError, match="not found"):
        call_command("vouchers", "block", "Autumn cards")


# -- API -----------------------------------------------------------------------------------------

@pytest.fixture
def admin_api(tenant):
    with tenant_context(tenant):
        return ApiClient(create_api_key(Actor.process("test"), "admin key", "admin")[1])


def test_redeem_over_the_api_answers_the_pocket(tenant, api, readonly_api, other_api, system):
    with tenant_context(tenant):
        _, (code, spare) = generate(system, count=2, value=Amount(60, "minute"), validity_days=7)
        account = make_account(mode="prepaid")
    answer = api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": code})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["source"], body["unit"], body["balance"], body["display_unit"], body["display_balance"]) == (
        "voucher", "second", "3600", "minute", "60")
    assert body["valid_until"].startswith("2026-03-17T12:00:00")
    again = api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": code})
    assert again.status_code == 409 and again.json()["error"]["code"] == "voucher_used"
    assert other_api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": spare}).status_code == 404
    assert readonly_api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": spare}).status_code == 403
    with tenant_context(tenant):
        assert Voucher.objects.filter(redeemed_at__isnull=True).count() == 1


def test_an_idempotent_redeem_replays_and_its_failures_still_count(tenant, api, system):
    with tenant_context(tenant):
        _, (code,) = generate(system, count=1)
        account = make_account()
    path = f"/accounts/{account.pk}/vouchers/redeem"
    first = api.post(path, {"code": code}, **{"Idempotency-Key": "redeem-1"})
    repeat = api.post(path, {"code": code}, **{"Idempotency-Key": "redeem-1"})
    assert first.status_code == repeat.status_code == 201 and first.json() == repeat.json()
    for i in range(5):
        failed = api.post(path, {"code": vouchers.new_code()}, **{"Idempotency-Key": f"guess-{i}"})
        assert failed.json()["error"]["code"] == "voucher_invalid"
    locked = api.post(path, {"code": vouchers.new_code()}, **{"Idempotency-Key": "guess-5"})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts"
    with tenant_context(tenant):
        assert RedemptionFailure.objects.filter(account=account, ip="127.0.0.1").count() == 5
        assert Pocket.objects.filter(account=account).count() == 1


def test_a_forged_forwarded_for_header_does_not_escape_the_address_limit(tenant, api):
    with tenant_context(tenant):
        accounts = [make_account(f"A-{i}") for i in range(6)]
    codes = []
    for i, account in enumerate(accounts):
        answer = api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": vouchers.new_code()},
                          **{"X-Forwarded-For": f"10.0.0.{i}"})
        codes.append(answer.json()["error"]["code"])
    assert codes == ["voucher_invalid"] * 5 + ["too_many_attempts"]
    with tenant_context(tenant):
        assert set(RedemptionFailure.objects.values_list("ip", flat=True)) == {"127.0.0.1"}


def test_voucher_batches_over_the_api_show_codes_once(tenant, api, admin_api):
    request = {"name": "Web shop", "count": 3, "value": "5.00", "expires": "2027-12-31"}
    assert api.post("/voucher-batches", request).status_code == 403  # clerks do not print value
    assert api.get("/voucher-batches").status_code == 403
    created = admin_api.post("/voucher-batches", request, **{"Idempotency-Key": "batch-1"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["codes_included"] is True and len(body["codes"]) == 3
    assert [row["code"] for row in body["vouchers"]] == body["codes"]
    assert body["vouchers"][0] == {"code": body["codes"][0], "value": "5.00", "unit": "EUR",
                                   "expires": "2027-12-31"}
    shown = ("name", "value", "unit", "issued", "redeemed", "expires", "status")
    assert {k: body["batch"][k] for k in shown} == {
        "name": "Web shop", "value": "5", "unit": "EUR", "issued": 3, "redeemed": 0, "expires": "2027-12-31",
        "status": "active"}
    with all_tenants():
        assert_codes_not_stored(body["codes"])  # the idempotency record holds the batch, not the codes

    repeat = admin_api.post("/voucher-batches", request, **{"Idempotency-Key": "batch-1"})
    assert repeat.status_code == 201
    assert repeat.json()["codes_included"] is False and repeat.json()["codes"] == []
    assert repeat.json()["batch"]["id"] == body["batch"]["id"]

    with tenant_context(tenant):
        account = make_account()
    api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": body["codes"][0]})
    listing = admin_api.get("/voucher-batches").json()
    assert listing["count"] == 1
    assert (listing["items"][0]["redeemed"], listing["items"][0]["available"]) == (1, 2)
    with tenant_context(tenant):
        vouchers.block_batch(Actor.process("test"), VoucherBatch.objects.get(), reason="leaked")
    refused = api.post(f"/accounts/{account.pk}/vouchers/redeem", {"code": body["codes"][1]})
    assert refused.json()["error"]["code"] == "voucher_blocked"
    bad = admin_api.post("/voucher-batches", {**request, "name": "Other", "value": "5.001"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "value"


# -- back office ---------------------------------------------------------------------------------

def test_the_back_office_lists_batches_with_counts_and_blocks_them(tenant, system, clerk):
    from django.contrib.auth import get_user_model
    from django.test import Client

    with tenant_context(tenant):
        batch, (code, _) = generate(system, count=2, name="Fair 2026")
        vouchers.redeem(clerk, make_account(), code)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-123456"))
    page = client.get("/admin/balances/voucherbatch/").content.decode()
    assert "Fair 2026" in page
    assert client.get(f"/admin/balances/voucher/?q={code[-4:]}").status_code == 200
    voucher_page = client.get("/admin/balances/voucher/").content.decode()
    assert f"…{code[-4:]}" in voucher_page and "redeemed" in voucher_page and code not in voucher_page
    client.post("/admin/balances/voucherbatch/", {"action": "block", "_selected_action": [batch.pk]})
    with tenant_context(tenant):
        batch.refresh_from_db()
        assert batch.status == "blocked" and history(batch).first().actor_label == "root"


# -- concurrency (PostgreSQL) --------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_32_concurrent_redemptions_of_one_code_credit_once(tenant):
    actor = Actor.process("test")
    with tenant_context(tenant):
        _, (code,) = generate(actor, count=1)
        accounts = [make_account(f"A-{i}", mode="prepaid") for i in range(32)]
    results = race(tenant, [lambda a=a: vouchers.redeem(actor, a, code) and "ok" for a in accounts])
    assert sorted(results) == ["ok"] + ["voucher_used"] * 31
    with tenant_context(tenant):
        pocket = Pocket.objects.get(source=Source.VOUCHER)
        assert pocket.balance == Decimal("10.00") and Voucher.objects.get().account_id == pocket.account_id
        assert LedgerEntry.objects.filter(pocket__source=Source.VOUCHER).count() == 1
        assert RedemptionFailure.objects.filter(reason="voucher_used").count() == 31
        assert services.verify() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_32_concurrent_guesses_on_one_account_count_exactly_five(tenant):
    actor = Actor.process("test")
    with tenant_context(tenant):
        account = make_account()
    results = race(tenant, [lambda: vouchers.redeem(actor, account, vouchers.new_code()) and "ok"
                            for _ in range(32)])
    assert sorted(results) == ["too_many_attempts"] * 27 + ["voucher_invalid"] * 5
    with tenant_context(tenant):
        assert RedemptionFailure.objects.filter(account=account).count() == 5
