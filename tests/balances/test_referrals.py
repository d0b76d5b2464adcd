"""Bring-a-friend referrals: codes, signups, the qualifying events, credit exactly once; the API."""
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection, connections

from obol.balances import referrals
from obol.balances.models import Pocket, Referral, ReferralCode, ReferralProgram, Source
from obol.balances.services import verify
from obol.core import clock
from obol.core.errors import Conflict, Forbidden, ValidationFailed
from obol.core.models import AuditEvent
from obol.core.tenancy import tenant_context
from obol.customers.models import Customer
from obol.subscriptions.services import subscribe, transition
from tests.balances.test_loyalty import admin_in_tenant  # noqa: F401  (a superuser in the tenant)
from tests.factories import make_account, make_plan

D = Decimal
NOW = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
FIRST_ACTIVATION, FIRST_INVOICE_PAID = "first_activation", "first_invoice_paid"


def program(event=FIRST_ACTIVATION, referrer=("10.00", "EUR"), referred=("5.00", "EUR"), **fields):
    return ReferralProgram.objects.create(
        qualifying_event=event, referrer_value=D(referrer[0]), referrer_unit=referrer[1],
        referred_value=D(referred[0]) if referred else None, referred_unit=referred[1] if referred else "",
        **fields)


def customer(number, name):
    return Customer.objects.create(number=number, name=name)


def referral_pockets(customer_):
    return list(Pocket.objects.filter(account__customer=customer_, source=Source.REFERRAL)
                .values_list("account__number", "unit", "balance"))


@pytest.fixture
def friends(in_tenant):
    """Ada (account A-1, EUR) hands her code to Bob (account B-1, EUR)."""
    ada, bob = customer("C-ADA", "Ada Lovelace"), customer("C-BOB", "Bob Builder")
    make_account("A-1", customer=ada)
    make_account("B-1", customer=bob)
    return ada, bob


@pytest.fixture
def frozen_now():
    with clock.frozen(NOW) as now:
        yield now


# --- codes -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_each_customer_gets_one_code(friends):
    ada, bob = friends
    code = referrals.referral_code_for(ada)
    assert referrals.referral_code_for(ada).pk == code.pk
    assert len(code.code) == 8 and set(code.code) <= set(referrals.ALPHABET)
    assert referrals.referral_code_for(bob).code != code.code
    assert ReferralCode.objects.count() == 2


# --- signups -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_signup_refusals(friends, clerk, reader, tenant, other_tenant):
    ada, bob = friends
    with pytest.raises(ValidationFailed) as no_program:
        referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    assert no_program.value.code == "no_referral_program"
    program()
    code = referrals.referral_code_for(ada).code
    with pytest.raises(ValidationFailed) as own:
        referrals.register_signup(clerk, ada, code)
    assert (own.value.code, own.value.field) == ("self_referral", "referral_code")
    with pytest.raises(ValidationFailed) as unknown:
        referrals.register_signup(clerk, bob, "NOPE2345")
    assert (unknown.value.code, unknown.value.field) == ("unknown_referral_code", "referral_code")
    with tenant_context(other_tenant):
        stranger = referrals.referral_code_for(customer("C-X", "Xavier")).code
    with pytest.raises(ValidationFailed) as other_tenants_code:
        referrals.register_signup(clerk, bob, stranger)
    assert other_tenants_code.value.code == "unknown_referral_code"
    with pytest.raises(Forbidden):
        referrals.register_signup(reader, bob, code)

    referral = referrals.register_signup(clerk, bob, f" {code.lower()[:4]} {code.lower()[4:]} ")  # as typed
    assert (referral.referrer_id, referral.referred_id, referral.code, referral.state) == (
        ada.pk, bob.pk, code, "pending")
    with pytest.raises(Conflict) as twice:
        referrals.register_signup(clerk, bob, code)
    assert twice.value.code == "already_referred"
    assert Referral.objects.count() == 1
    assert AuditEvent.objects.filter(action="referral.register").count() == 1


# --- first invoice paid ------------------------------------------------------------------------

@pytest.mark.django_db
def test_first_invoice_paid_twice_credits_once(friends, clerk, frozen_now):
    ada, bob = friends
    program(FIRST_INVOICE_PAID, validity_days=90)
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)

    referral = referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1")
    assert (referral.state, referral.credited_at, referral.qualified_by) == ("credited", NOW, "invoice:INV-1")
    assert referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1") is None
    assert referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-2") is None

    assert referral_pockets(ada) == [("A-1", "EUR", D("10.00"))]
    assert referral_pockets(bob) == [("B-1", "EUR", D("5.00"))]
    pocket = Pocket.objects.get(grant_key=f"referral:{referral.pk}:referrer")
    assert pocket.valid_until == NOW + timedelta(days=90) and pocket.label == "Referral bonus (C-BOB)"
    assert AuditEvent.objects.filter(action="referral.credit", object_id=str(referral.pk)).count() == 1
    assert verify() == []


@pytest.mark.django_db
def test_an_invoice_does_not_qualify_a_first_activation_program(friends, clerk):
    ada, bob = friends
    program(FIRST_ACTIVATION)
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    assert referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1") is None
    assert Referral.objects.get().state == "pending" and referral_pockets(ada) == []


# --- first activation --------------------------------------------------------------------------

@pytest.mark.django_db
def test_first_activation_credits_once_and_a_second_subscription_nothing_more(friends, clerk, frozen_now):
    ada, bob = friends
    program(FIRST_ACTIVATION, referred=None)
    plan = make_plan()
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    bob_account = bob.accounts.get()

    pending = subscribe(clerk, bob_account, plan, start_date=date(2026, 3, 1), activate=False)
    assert Referral.objects.get().state == "pending"  # created, not active: no qualifying event yet
    subscribe(clerk, bob_account, plan, start_date=date(2026, 3, 1))  # activated: first for Bob
    referral = Referral.objects.get()
    assert referral.state == "credited" and referral.qualified_by.startswith("subscription:")
    assert referral_pockets(ada) == [("A-1", "EUR", D("10.00"))]
    assert referral_pockets(bob) == []  # this program credits only the referrer

    transition(clerk, pending, "activate", date(2026, 3, 5))  # Bob's second activation
    subscribe(clerk, bob_account, plan, start_date=date(2026, 3, 6))  # and third
    assert referral_pockets(ada) == [("A-1", "EUR", D("10.00"))]
    assert AuditEvent.objects.filter(action="referral.credit").count() == 1


@pytest.mark.django_db
def test_activation_does_not_qualify_an_invoice_program(friends, clerk):
    ada, bob = friends
    program(FIRST_INVOICE_PAID)
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    subscribe(clerk, bob.accounts.get(), make_plan(), start_date=date(2026, 3, 1))
    assert Referral.objects.get().state == "pending" and referral_pockets(ada) == []
    referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1")
    assert referral_pockets(ada) == [("A-1", "EUR", D("10.00"))]


# --- which account, other units, refusal -------------------------------------------------------

@pytest.mark.django_db
def test_credit_waits_for_an_account_in_the_currency(in_tenant, clerk, frozen_now):
    ada, bob = customer("C-ADA", "Ada"), customer("C-BOB", "Bob")
    make_account("A-USD", currency="USD", customer=ada)
    make_account("B-1", customer=bob)
    program(FIRST_INVOICE_PAID)
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)

    referral = referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1")
    assert referral.state == "qualified" and referral.credited_at is None
    assert referral.note == "customer C-ADA has no active account for EUR"
    assert referral_pockets(ada) == [] and referral_pockets(bob) == [("B-1", "EUR", D("5.00"))]

    closed = make_account("A-OLD", customer=ada, status="closed")
    make_account("A-EUR", customer=ada)
    make_account("A-EUR2", customer=ada)
    referral = referrals.credit_referral(clerk, referral)
    assert referral.state == "credited" and referral.note == ""
    assert referral_pockets(ada) == [("A-EUR", "EUR", D("10.00"))]  # first active EUR account
    assert referral_pockets(bob) == [("B-1", "EUR", D("5.00"))]  # not a second time
    assert not Pocket.objects.filter(account=closed).exists()
    with pytest.raises(Conflict):
        referrals.credit_referral(clerk, referral)


@pytest.mark.django_db
def test_a_credit_in_gigabytes(friends, clerk):
    ada, bob = friends
    program(FIRST_INVOICE_PAID, referrer=("1", "gigabyte"), referred=("1", "package"))
    referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1")
    assert referral_pockets(ada) == [("A-1", "byte", D(1024**3))]
    assert referral_pockets(bob) == [("B-1", "package", D(1))]


@pytest.mark.django_db
def test_a_refused_referral_never_credits(friends, clerk):
    ada, bob = friends
    program(FIRST_INVOICE_PAID)
    referral = referrals.register_signup(clerk, bob, referrals.referral_code_for(ada).code)
    with pytest.raises(ValidationFailed):
        referrals.refuse_referral(clerk, referral, " ")
    referrals.refuse_referral(clerk, referral, "same person, two names")
    assert referrals.on_first_invoice_paid(clerk, bob, invoice_reference="INV-1") is None
    assert Referral.objects.get().state == "refused" and referral_pockets(ada) == []


# --- API ---------------------------------------------------------------------------------------

@pytest.fixture
def ada(tenant):
    with tenant_context(tenant):
        program(FIRST_INVOICE_PAID)
        ada = customer("C-ADA", "Ada Lovelace")
    return ada


@pytest.mark.django_db
def test_api_referral_code_and_signup_with_it(api, readonly_api, other_api, ada, tenant, clerk):
    first = api.get(f"/customers/{ada.pk}/referral-code")
    assert first.status_code == 200 and first.json()["customer_id"] == ada.pk
    code = first.json()["code"]
    assert readonly_api.get(f"/customers/{ada.pk}/referral-code").json()["code"] == code
    assert other_api.get(f"/customers/{ada.pk}/referral-code").status_code == 404

    bad = api.post("/customers", {"name": "Bob Builder", "referral_code": "WRONG234"})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_referral_code", "referral_code")
    assert other_api.post("/customers", {"name": "Eve", "referral_code": code}).status_code == 422
    with tenant_context(tenant):
        assert list(Customer.objects.values_list("name", flat=True)) == ["Ada Lovelace"]  # no Bob, no Eve

    bob = api.post("/customers", {"name": "Bob Builder", "referral_code": code})
    assert bob.status_code == 201, bob.content
    plain = api.post("/customers", {"name": "Carol"})
    assert plain.status_code == 201
    made = api.get(f"/customers/{ada.pk}/referrals").json()
    assert [(r["referred_id"], r["referred_name"], r["code"], r["state"]) for r in made] == [
        (bob.json()["id"], "Bob Builder", code, "pending")]
    assert api.get(f"/customers/{bob.json()['id']}/referrals").json() == []

    with tenant_context(tenant):
        bob_customer = Customer.objects.get(pk=bob.json()["id"])
        make_account("B-1", customer=bob_customer)
        referrals.on_first_invoice_paid(clerk, bob_customer, invoice_reference="INV-1")
    assert api.get(f"/customers/{ada.pk}/referrals").json()[0]["state"] == "qualified"  # Ada: no account yet


# --- concurrency (PostgreSQL) ------------------------------------------------------------------

@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_payment_events_credit_once(tenant, system):
    with tenant_context(tenant):
        ada, bob = customer("C-ADA", "Ada"), customer("C-BOB", "Bob")
        make_account("A-1", customer=ada)
        make_account("B-1", customer=bob)
        program(FIRST_INVOICE_PAID)
        referrals.register_signup(system, bob, referrals.referral_code_for(ada).code)
    barrier = threading.Barrier(4)
    results = []

    def paid():
        try:
            with tenant_context(tenant):
                barrier.wait()
                referral = referrals.on_first_invoice_paid(system, bob, invoice_reference="INV-1")
                results.append(referral is not None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=paid) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    with tenant_context(tenant):
        assert referral_pockets(ada) == [("A-1", "EUR", D("10.00"))]
        assert referral_pockets(bob) == [("B-1", "EUR", D("5.00"))]
        assert verify() == []


# --- back office -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_back_office_shows_referrals_and_refuses_one(tenant, admin_in_tenant, clerk):
    with tenant_context(tenant):
        ada, bob = customer("C-ADA", "Ada"), customer("C-BOB", "Bob")
        program_ = program(FIRST_INVOICE_PAID)
        code = referrals.referral_code_for(ada)
        referral = referrals.register_signup(clerk, bob, code.code)
    for url in ("/admin/balances/referralprogram/", "/admin/balances/referralprogram/add/",
                f"/admin/balances/referralprogram/{program_.pk}/change/", "/admin/balances/referralcode/",
                f"/admin/balances/referralcode/{code.pk}/change/", "/admin/balances/referral/",
                f"/admin/balances/referral/{referral.pk}/change/"):
        assert admin_in_tenant.get(url).status_code == 200, url
    assert admin_in_tenant.get("/admin/balances/referral/add/").status_code == 403  # services move the state
    second = admin_in_tenant.post("/admin/balances/referralprogram/add/", {
        "qualifying_event": FIRST_ACTIVATION, "referrer_value": "5", "referrer_unit": "EUR", "active": "on"})
    assert second.status_code == 200 and "already an active referral program" in second.content.decode()

    response = admin_in_tenant.post("/admin/balances/referral/", {
        "action": "refuse", "_selected_action": [str(referral.pk)]})
    assert response.status_code == 302
    with tenant_context(tenant):
        referral.refresh_from_db()
        assert referral.state == "refused" and referral.note == "refused in the back office"
        assert AuditEvent.objects.get(action="referral.refuse").actor_label == "boss"
