"""The catalog in the back office: versions in force are read-only, a copy is edited instead, and an
edit is checked against the file format's rules and re-fingerprinted."""
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from obol.catalog import services
from obol.catalog.models import Charge, PricePlan, PricePlanVersion
from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.roles import Role
from tests.support.staff import log_in_staff

pytestmark = pytest.mark.django_db

TODAY = date(2026, 5, 10)


@pytest.fixture
def staff(client, tenant):
    return log_in_staff(client, tenant, Role.CLERK)


@pytest.fixture
def catalog(in_tenant, system, demo_text):
    services.load_catalog(demo_text, source="samples/demo/catalog.yaml", actor=system)


@pytest.fixture(autouse=True)
def today():
    with frozen(TODAY):
        yield


def url(model, action, *args):
    return reverse(f"admin:catalog_{model}_{action}", args=args)


def form_data(response) -> dict:
    """What the browser would post back unchanged: the main form and every inline formset."""
    data = {}

    def add(form):
        for name, field in form.fields.items():
            value = form.initial.get(name, field.initial)
            if isinstance(value, bool):
                if value:
                    data[form.add_prefix(name)] = "on"
            else:
                data[form.add_prefix(name)] = "" if value is None else str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def mobile_s_fee(number: int) -> Charge:
    return Charge.objects.get(version__plan__code="mobile-s", version__number=number, code="monthly-fee")


def test_every_catalog_page_opens(staff, catalog):
    for model in ("product", "service", "priceplan", "priceplanversion", "charge", "allowance"):
        assert staff.get(url(model, "changelist")).status_code == 200, model
        assert staff.get(url(model, "add")).status_code == 200, model
    version = PricePlan.objects.get(code="business-seats").latest_version()
    assert staff.get(url("priceplan", "change", version.plan_id)).status_code == 200
    assert staff.get(url("priceplanversion", "change", version.pk)).status_code == 200
    assert staff.get(url("charge", "change", version.charges.get(code="seats").pk)).status_code == 200


def test_a_version_in_force_is_read_only(staff, catalog):
    fee = mobile_s_fee(1)
    page = staff.get(url("priceplanversion", "change", fee.version_id))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert staff.post(url("charge", "change", fee.pk), {"price": "0.01"}).status_code == 403
    fee.refresh_from_db()
    assert fee.price == Decimal("9.99")


def test_copy_edit_and_the_next_file_load_sees_the_edit(staff, catalog, system, demo_text):
    v1 = PricePlan.objects.get(code="mobile-s").latest_version()
    response = staff.post(url("priceplanversion", "changelist"),
                          {"action": "copy_version", "_selected_action": [v1.pk]}, follow=True)
    assert "Created mobile-s v2 (from 2026-05-11)" in response.content.decode()
    v2 = PricePlanVersion.objects.get(plan=v1.plan, number=2)
    assert v2.effective_from == date(2026, 5, 11)
    assert 'name="_save"' in staff.get(url("priceplanversion", "change", v2.pk)).content.decode()

    fee = mobile_s_fee(2)
    data = form_data(staff.get(url("charge", "change", fee.pk)))
    data["price"] = "10.49"
    assert staff.post(url("charge", "change", fee.pk), data).status_code == 302
    assert mobile_s_fee(2).price == Decimal("10.49") and mobile_s_fee(1).price == Decimal("9.99")
    assert history(fee).first().changes == {"price": ["9.99", "10.49"]}
    v2.refresh_from_db()
    assert v2.content_hash == services.content_hash(services.version_content(v2)) != v1.content_hash

    # The file still says 9.99: loading it again from June puts 9.99 back as version 3.
    report = services.load_catalog(demo_text, source="c.yaml", actor=system, effective_from=date(2026, 6, 1))
    assert report.new_versions == 1 and mobile_s_fee(3).price == Decimal("9.99")


def test_an_edit_that_breaks_the_rules_saves_nothing(staff, catalog, clerk):
    seats = Charge.objects.get(version__plan__code="business-seats", code="seats")
    copy = services.copy_version(seats.version, actor=clerk)
    seats = copy.charges.get(code="seats")
    data = form_data(staff.get(url("charge", "change", seats.pk)))
    data["tiers-1-up_to"] = "5"  # below the first tier's 10
    response = staff.post(url("charge", "change", seats.pk), data, follow=True)
    assert [str(m) for m in response.context["messages"]] == [(
        "Nothing was saved: business-seats version 2: charges[0].tiers[1].up_to: "
        "5 must be greater than the previous tier's 10")]
    assert [t.up_to for t in seats.tiers.order_by("position")] == [Decimal(10), Decimal(50), None]


def test_a_future_version_cannot_be_moved_into_the_past(staff, catalog, clerk):
    v1 = PricePlan.objects.get(code="payg").latest_version()
    v2 = services.copy_version(v1, actor=clerk)
    data = form_data(staff.get(url("priceplanversion", "change", v2.pk)))
    data["effective_from"] = "2026-05-10"
    response = staff.post(url("priceplanversion", "change", v2.pk), data)
    assert response.status_code == 200  # the form again, with the error
    assert "Must be after today (2026-05-10)" in response.content.decode()
    v2.refresh_from_db()
    assert v2.effective_from == date(2026, 5, 11)


def test_a_plan_made_in_the_back_office_gets_its_first_version(staff, catalog):
    page = staff.get(url("priceplan", "add"))
    data = form_data(page) | {"code": "promo", "name": "Promo", "currency": "EUR", "active": "on"}
    assert staff.post(url("priceplan", "add"), data).status_code == 302
    plan = PricePlan.objects.get(code="promo")

    data = form_data(staff.get(url("priceplanversion", "add")))
    data |= {"plan": plan.pk, "effective_from": "2026-06-01", "charges-TOTAL_FORMS": "1",
             "charges-0-position": "0", "charges-0-code": "fee", "charges-0-name": "Monthly fee",
             "charges-0-kind": "recurring", "charges-0-price": "4.99", "charges-0-period": "month",
             "charges-0-billing": "advance", "charges-0-tax_category": "standard"}
    assert staff.post(url("priceplanversion", "add"), data).status_code == 302
    version = plan.latest_version()
    assert (version.number, version.effective_from) == (1, date(2026, 6, 1))
    assert version.charges.get().price == Decimal("4.99")
    assert version.content_hash == services.content_hash(services.version_content(version))
    assert [e.action for e in history(version)] == ["priceplanversion.create"]
