"""The back office (Django admin) under the staff roles: read-only staff see but cannot change,
clerks change business data, nobody sees another tenant's rows."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from obol.core.models import AuditEvent, StaffProfile
from obol.core.tenancy import tenant_context
from obol.customers.models import Customer

pytestmark = pytest.mark.django_db


def staff_client(tenant, username, role) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def customer(tenant):
    with tenant_context(tenant):
        return Customer.objects.create(number="C-1", name="Ada Lovelace", country="GB")


def change_form(customer, name):
    return {
        "number": customer.number, "kind": "person", "name": name, "country": "GB",
        "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0",
        "addresses-TOTAL_FORMS": "0", "addresses-INITIAL_FORMS": "0",
        "accounts-TOTAL_FORMS": "0", "accounts-INITIAL_FORMS": "0",
    }


def test_read_only_staff_can_look_but_not_change(tenant, customer):
    client = staff_client(tenant, "viewer", "readonly")
    assert client.get("/admin/customers/customer/").status_code == 200
    page = client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200 and "Ada Lovelace" in page.content.decode()
    assert client.post(f"/admin/customers/customer/{customer.pk}/change/",
                       change_form(customer, "Changed")).status_code == 403
    assert client.get("/admin/customers/customer/add/").status_code == 403
    assert client.post(f"/admin/customers/customer/{customer.pk}/delete/", {"post": "yes"}).status_code == 403
    with tenant_context(tenant):
        assert Customer.objects.get().name == "Ada Lovelace"


def test_a_clerk_changes_a_customer_and_the_audit_trail_says_so(tenant, customer):
    client = staff_client(tenant, "clerk", "clerk")
    response = client.post(f"/admin/customers/customer/{customer.pk}/change/", change_form(customer, "Ada King"))
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant):
        assert Customer.objects.get().name == "Ada King"
        event = AuditEvent.objects.get(action="customer.change")
    assert event.actor_label == "clerk" and event.changes == {"name": ["Ada Lovelace", "Ada King"]}


def test_staff_never_see_another_tenants_customer(tenant, other_tenant, customer):
    client = staff_client(other_tenant, "intruder", "admin")
    listing = client.get("/admin/customers/customer/")
    assert listing.status_code == 200 and "Ada Lovelace" not in listing.content.decode()
    page = client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 302  # the admin's "does not exist" redirect
    assert client.post(f"/admin/customers/customer/{customer.pk}/change/",
                       change_form(customer, "Hacked")).status_code in (302, 404)
    with tenant_context(tenant):
        assert Customer.objects.get().name == "Ada Lovelace"


def test_invalid_vat_number_is_refused_in_the_admin_too(tenant, customer):
    client = staff_client(tenant, "clerk", "clerk")
    form = {**change_form(customer, "Muster GmbH"), "kind": "company", "country": "DE", "tax_id": "DE136695977"}
    response = client.post(f"/admin/customers/customer/{customer.pk}/change/", form)
    assert response.status_code == 200
    assert "not a valid VAT number for DE" in response.content.decode()


def test_the_account_currency_cannot_change_under_subscriptions(tenant, clerk):
    from datetime import date

    from obol.customers.models import BillingAccount
    from obol.subscriptions import services
    from tests.factories import make_account, make_plan

    with tenant_context(tenant):
        account = make_account("A-1")
        services.subscribe(clerk, account, make_plan(), start_date=date(2026, 1, 1))
    client = staff_client(tenant, "clerkuser", "clerk")
    form = {"number": "A-1", "customer": account.customer_id, "currency": "USD", "bill_cycle_day": 1,
            "payment_terms_days": 14, "mode": "postpaid", "status": "active"}
    response = client.post(f"/admin/customers/billingaccount/{account.pk}/change/", form)
    assert response.status_code == 200
    assert "cannot change once the account has subscriptions" in response.content.decode()
    with tenant_context(tenant):
        assert BillingAccount.objects.get().currency == "EUR"


def test_a_platform_superuser_adds_a_contact_in_the_customers_tenant(tenant, customer):
    user = get_user_model().objects.create_superuser("root", password="pw-123456")
    client = Client()
    client.force_login(user)
    form = {**change_form(customer, "Ada Lovelace"), "tenant": tenant.pk,
            "contacts-TOTAL_FORMS": "1", "contacts-0-role": "billing", "contacts-0-name": "Byron"}
    response = client.post(f"/admin/customers/customer/{customer.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:1500]
    with tenant_context(tenant):
        assert customer.contacts.get().name == "Byron"


def test_a_clerk_subscribes_and_terminates_in_the_back_office(tenant, clerk):
    from obol.core.audit import history
    from obol.subscriptions.models import Subscription
    from tests.factories import make_account, make_plan

    with tenant_context(tenant):
        account, plan = make_account("A-1"), make_plan()
        usd_plan = make_plan("usd-plan", currency="USD")
    client = staff_client(tenant, "clerkuser", "clerk")
    refused = client.post("/admin/subscriptions/subscription/add/",
                          {"account": account.pk, "plan": usd_plan.pk, "quantity": "1", "start_date": "2026-02-01"})
    assert refused.status_code == 200 and "priced in USD" in refused.content.decode()
    created = client.post("/admin/subscriptions/subscription/add/",
                          {"account": account.pk, "plan": plan.pk, "quantity": "2", "start_date": "2026-02-01"})
    assert created.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", created.content.decode(), re.S)
    with tenant_context(tenant):
        sub = Subscription.objects.get()
    assert sub.status == "active" and sub.quantity == 2
    client.post("/admin/subscriptions/subscription/", {"action": "terminate_today", "_selected_action": [sub.pk]})
    with tenant_context(tenant):
        sub.refresh_from_db()
        assert sub.status == "terminated"
        assert history(sub).first().actor_label == "clerkuser"


def test_a_duplicate_customer_number_is_a_form_error_not_a_crash(tenant, customer):
    client = staff_client(tenant, "clerk", "clerk")
    form = {**change_form(customer, "Someone else"), "number": "C-1"}
    response = client.post("/admin/customers/customer/add/", form)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    with tenant_context(tenant):
        assert Customer.objects.count() == 1
