"""Loading a catalog: what a billing team checks after loading the demo file, idempotency,
new versions from a date, history never rewritten, and a bad file changing nothing."""
from datetime import date
from decimal import Decimal

import pytest

from obol.catalog import services
from obol.catalog.models import Allowance, Charge, ChargeTier, PricePlan, PricePlanVersion, Product, Service
from obol.catalog.services import apply_plan, load_catalog
from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.errors import Forbidden, ValidationFailed
from obol.core.models import AuditEvent
from obol.customers.models import Reseller

pytestmark = pytest.mark.django_db

DEMO = "samples/demo/catalog.yaml"


MODELS = (Service, Product, PricePlan, PricePlanVersion, Charge, ChargeTier, Allowance, AuditEvent)


def counts() -> dict:
    return {model.__name__: model.objects.count() for model in MODELS}


def nothing() -> dict:
    return {model.__name__: 0 for model in MODELS}


@pytest.fixture
def demo(in_tenant, system, demo_text):
    return load_catalog(demo_text, source=DEMO, actor=system)


def test_the_demo_catalog_loads_what_it_says(demo):
    assert str(demo) == (f"{DEMO}: services 4 created, 0 updated, 0 unchanged; "
                         "products 9 created, 0 updated, 0 unchanged; "
                         "plans 6 created, 0 updated, 0 unchanged; 6 new plan versions")
    assert {s.code: s.unit for s in Service.objects.all()} == {
        "voice": "second", "sms": "sms", "data": "byte", "video": "play"}

    mobile_s = PricePlan.objects.get(code="mobile-s")
    assert (mobile_s.name, mobile_s.currency, mobile_s.active) == ("Mobile S", "EUR", True)
    version = mobile_s.version_at(date(2025, 1, 1))
    assert (version.number, version.effective_from) == (1, date(2025, 1, 1))
    assert mobile_s.version_at(date(2024, 12, 31)) is None
    fee, voice, sms, data = version.charges.order_by("position")
    assert (fee.kind, fee.price, fee.period, fee.billing, fee.prorate) == (
        "recurring", Decimal("9.99"), "month", "advance", True)
    assert fee.product.code == "mobile" and fee.tax_category == "standard"
    assert [(c.kind, c.service.code, c.rate_table) for c in (voice, sms, data)] == [
        ("usage", "voice", "voice-national"), ("usage", "sms", "sms-national"),
        ("usage", "data", "data-national")]
    allowances = version.allowances.order_by("position")
    assert [(a.service.code, a.amount, a.unit, a.period) for a in allowances] == [
        ("voice", Decimal(300), "minute", "month"), ("sms", Decimal(100), "sms", "month"),
        ("data", Decimal(5), "gigabyte", "month")]

    payg = PricePlan.objects.get(code="payg").latest_version()
    assert {c.kind for c in payg.charges.all()} == {"usage"} and not payg.allowances.exists()


def test_the_demo_fibre_and_business_plans(demo):
    fibre = PricePlan.objects.get(code="fibre-500").latest_version()
    charges = {c.code: c for c in fibre.charges.all()}
    assert (charges["monthly-fee"].price, charges["monthly-fee"].prorate) == (Decimal("39.90"), True)
    assert (charges["activation"].kind, charges["activation"].price, charges["activation"].event) == (
        "one_time", Decimal("49.00"), "activation")
    assert (charges["static-ip"].kind, charges["static-ip"].model, charges["static-ip"].price) == (
        "quantity", "per_unit", Decimal(5))

    seats = Charge.objects.get(version__plan__code="business-seats", code="seats")
    assert (seats.model, seats.price) == ("graduated", None)
    assert [(t.up_to, t.unit_price, t.flat_fee) for t in seats.tiers.order_by("position")] == [
        (Decimal(10), Decimal(12), Decimal(0)), (Decimal(50), Decimal(10), Decimal(0)),
        (None, Decimal(8), Decimal(0))]
    bundles = Charge.objects.get(version__plan__code="business-seats", code="sms-bundles")
    assert (bundles.model, bundles.price, bundles.package_size) == ("package", Decimal(5), Decimal(1000))
    assert PricePlan.objects.get(code="mobile-unlimited").latest_version().bill_during_suspension is True


def test_loading_the_same_file_twice_changes_nothing(demo, system, demo_text):
    before = counts()
    again = load_catalog(demo_text, source=DEMO, actor=system)
    assert counts() == before  # no new version, charge, allowance or audit row
    assert str(again) == (f"{DEMO}: services 0 created, 0 updated, 4 unchanged; "
                          "products 0 created, 0 updated, 9 unchanged; "
                          "plans 0 created, 0 updated, 6 unchanged; 0 new plan versions")
    assert not again.changed


def test_every_created_object_is_audited_with_actor_and_reason(demo):
    plan = PricePlan.objects.get(code="mobile-s")
    (created,) = history(plan)
    assert (created.action, created.actor_label, created.reason) == (
        "priceplan.create", "test", f"catalog load {DEMO}")
    (version_created,) = history(plan.latest_version())
    assert version_created.action == "priceplanversion.create"
    assert version_created.changes["charges"][0]["price"] == "9.99"
    assert history(Service.objects.get(code="voice")).get().action == "service.create"


def test_a_changed_price_makes_version_2_from_the_given_date(demo, system, demo_text):
    changed = demo_text.replace("name: Mobile S monthly fee, product: mobile, price: 9.99",
                                "name: Mobile S monthly fee, product: mobile, price: 10.49")
    assert changed != demo_text
    report = load_catalog(changed, source="catalog-2026.yaml", actor=system, effective_from=date(2026, 3, 1))
    assert (report.plans.updated, report.plans.unchanged, report.new_versions) == (1, 5, 1)

    plan = PricePlan.objects.get(code="mobile-s")
    v1, v2 = plan.versions.order_by("number")
    assert (v1.effective_from, v2.number, v2.effective_from) == (date(2025, 1, 1), 2, date(2026, 3, 1))
    assert v1.charges.get(code="monthly-fee").price == Decimal("9.99")  # version 1 as it was
    assert v2.charges.get(code="monthly-fee").price == Decimal("10.49")
    assert v1.charges.count() == v2.charges.count() == 4 and v2.allowances.count() == 3
    assert plan.version_at(date(2026, 2, 28)) == v1
    assert plan.version_at(date(2026, 3, 1)) == v2
    assert plan.version_at(date(2030, 1, 1)) == v2

    before = counts()
    load_catalog(changed, source="catalog-2026.yaml", actor=system, effective_from=date(2026, 4, 1))
    assert counts() == before  # same content as version 2: nothing new, whatever the date


def test_a_date_not_after_the_latest_version_is_refused(demo, system, demo_text):
    changed = demo_text.replace("price: 19.99", "price: 21.99")
    before = counts()
    for day in (date(2025, 1, 1), date(2024, 6, 1)):
        with pytest.raises(ValidationFailed) as caught:
            load_catalog(changed, source="c.yaml", actor=system, effective_from=day)
        assert str(caught.value) == (
            "c.yaml: plans[1]: would rewrite history: plan mobile-m version 1 is already effective from "
            "2025-01-01; give an effective_from after that date")
    # the file's own effective_from (2025-01-01) is used when no date is given: refused as well
    with pytest.raises(ValidationFailed, match="would rewrite history"):
        load_catalog(changed, source="c.yaml", actor=system)
    assert counts() == before


def test_names_change_in_place_without_a_new_version(demo, system, demo_text):
    renamed = demo_text.replace("name: Mobile S\n", "name: Mobile Small\n").replace(
        "name: Voice calls,", "name: Calls,")
    report = load_catalog(renamed, source="c.yaml", actor=system)
    assert (report.plans.updated, report.services.updated, report.new_versions) == (1, 1, 0)
    plan = PricePlan.objects.get(code="mobile-s")
    assert plan.name == "Mobile Small" and plan.versions.count() == 1
    assert history(plan).first().changes == {"name": ["Mobile S", "Mobile Small"]}


def test_the_broken_price_file_loads_nothing(in_tenant, system, repo_root):
    path = "samples/catalog-broken-price.yaml"
    with pytest.raises(ValidationFailed) as caught:
        load_catalog((repo_root / path).read_text(), source=path, actor=system)
    assert caught.value.field == "plans[0].charges[0].price"
    assert str(caught.value) == f"{path}: plans[0].charges[0].price: '9,99' is not a decimal number"
    assert counts() == nothing()  # not even the service defined above the bad plan


def test_a_bad_later_plan_means_nothing_at_all_is_created(in_tenant, system, demo_text):
    # Every plan before the last is valid and would be written first; the last one is not.
    broken = demo_text.replace("model: package, price: 5.00, package_size: 1000",
                               "model: package, price: 5.00, package_size: 1000, rate_table: x")
    with pytest.raises(ValidationFailed, match=r"plans\[5\]\.charges\[2\]\.rate_table: unknown key"):
        load_catalog(broken, source="c.yaml", actor=system)
    # A problem only the database can see (an unknown reseller), in the last plan:
    late = demo_text.replace("code: business-seats\n", "code: business-seats\n    reseller: nobody\n")
    with pytest.raises(ValidationFailed, match=r"plans\[5\]\.reseller: unknown reseller 'nobody'"):
        load_catalog(late, source="c.yaml", actor=system)
    assert counts() == nothing()


def test_a_refusal_in_a_later_plan_rolls_back_the_versions_of_earlier_ones(demo, system, demo_text):
    unlimited = demo_text.replace("price: 34.90", "price: 36.90")
    load_catalog(unlimited, source="c.yaml", actor=system, effective_from=date(2026, 6, 1))
    before = counts()
    # mobile-s (plans[0]) could get a version from 2026-03-01, but mobile-unlimited (plans[2]) cannot.
    both = unlimited.replace("price: 9.99", "price: 10.99").replace("price: 36.90", "price: 37.90")
    refused = r"c.yaml: plans\[2\]: would rewrite history: plan mobile-unlimited version 2 is already"
    with pytest.raises(ValidationFailed, match=refused + " effective from 2026-06-01"):
        load_catalog(both, source="c.yaml", actor=system, effective_from=date(2026, 3, 1))
    assert counts() == before
    assert PricePlan.objects.get(code="mobile-s").versions.count() == 1


@pytest.mark.parametrize(("edit", "path", "reason"), [
    (("service: voice, rate_table: voice-national}", "service: voyce, rate_table: voice-national}"),
     "plans[0].charges[1].service", "unknown service 'voyce'"),
    (("{service: data, amount: 5, unit: gigabyte}", "{service: dada, amount: 5, unit: gigabyte}"),
     "plans[0].allowances[2].service", "unknown service 'dada'"),
    (("product: mobile, price: 9.99", "product: mobiel, price: 9.99"),
     "plans[0].charges[0].product", "unknown product 'mobiel'"),
    (("{service: sms, amount: 100, unit: sms}", "{service: sms, amount: 100, unit: minute}"),
     "plans[0].allowances[1].unit", "minute cannot count service 'sms', measured in sms"),
])
def test_unknown_references_name_their_path(in_tenant, system, demo_text, edit, path, reason):
    broken = demo_text.replace(*edit, 1)
    assert broken != demo_text
    with pytest.raises(ValidationFailed) as caught:
        load_catalog(broken, source="c.yaml", actor=system)
    assert caught.value.field == path
    assert str(caught.value) == f"c.yaml: {path}: {reason}"
    assert counts() == nothing()


def test_two_usage_charges_for_one_kind_of_service_are_refused(in_tenant, system, demo_text):
    """Records say only 'voice' or 'sms': a plan with two voice usage charges would leave mediation
    to guess which rate table prices a call."""
    broken = demo_text.replace("service: sms, rate_table: sms-national}", "service: voice, rate_table: sms-national}", 1)
    with pytest.raises(ValidationFailed) as caught:
        load_catalog(broken, source="c.yaml", actor=system)
    assert caught.value.field == "plans[0].charges[2].service"
    assert "a second usage charge for voice (also charges[1])" in str(caught.value)
    assert counts() == nothing()


def test_a_service_unit_never_changes(demo, system, demo_text):
    with pytest.raises(ValidationFailed) as caught:
        load_catalog(demo_text.replace("kind: voice, unit: second", "kind: voice, unit: minute"),
                     source="c.yaml", actor=system)
    assert str(caught.value) == ("c.yaml: services[0].unit: cannot change from second to minute: usage and "
                                 "allowances of service 'voice' already count in it; use a new code instead")


def test_a_reader_may_not_load(in_tenant, reader, demo_text):
    with pytest.raises(Forbidden):
        load_catalog(demo_text, source=DEMO, actor=reader)
    assert counts() == nothing()


def test_a_clerk_may_load(in_tenant, clerk, demo_text):
    load_catalog(demo_text, source=DEMO, actor=clerk)
    assert AuditEvent.objects.filter(actor_label="clerk@acme").count() == counts()["AuditEvent"] > 0


def test_the_reseller_is_resolved_by_code(in_tenant, system):
    reseller = Reseller.objects.create(code="simply", name="Simply Mobile")
    doc = {"catalog": 1, "plans": [{"code": "simply-s", "name": "Simply S", "reseller": "simply",
                                    "charges": [{"type": "recurring", "code": "fee", "price": "7.50"}]}]}
    load_catalog(doc, source="dict", actor=system, effective_from=date(2026, 1, 1))
    plan = PricePlan.objects.get(code="simply-s")
    assert plan.reseller == reseller and plan.currency == "EUR"  # the tenant's currency when none is given


def test_content_fingerprint_is_the_same_from_the_file_and_from_the_rows(demo):
    for version in PricePlanVersion.objects.all():
        assert services.content_hash(services.version_content(version)) == version.content_hash


def test_a_plan_exported_and_loaded_again_is_unchanged(demo, system):
    for plan in PricePlan.objects.all():
        document = services.plan_document(plan.latest_version())
        _, created_version = apply_plan(document, actor=system, effective_from=date(2027, 1, 1))
        assert created_version is False, plan.code


class TestApplyPlan:
    PLAN = {"code": "iot", "name": "IoT connectivity", "currency": "EUR",
            "charges": [{"type": "recurring", "code": "fee", "price": "1.20"},
                        {"type": "usage", "code": "data", "service": "data", "rate_table": "iot-data"}],
            "allowances": [{"service": "data", "amount": "50", "unit": "megabyte"}]}

    def test_creates_then_versions_a_plan(self, demo, clerk):
        with frozen(date(2026, 5, 10)):
            plan, created = apply_plan(self.PLAN, actor=clerk)
            assert created and plan.latest_version().effective_from == date(2026, 5, 10)
            assert apply_plan(self.PLAN, actor=clerk) == (plan, False)
            cheaper = {**self.PLAN, "charges": [{**self.PLAN["charges"][0], "price": "0.99"},
                                                self.PLAN["charges"][1]]}
            with pytest.raises(ValidationFailed) as caught:
                apply_plan(cheaper, actor=clerk)
            assert caught.value.field == "effective_from"
            assert "plan iot version 1 is already effective from 2026-05-10" in caught.value.message
            plan, created = apply_plan(cheaper, actor=clerk, effective_from=date(2026, 6, 1))
        assert created and plan.version_at(date(2026, 6, 1)).charges.get(code="fee").price == Decimal("0.99")
        assert plan.version_at(date(2026, 5, 31)).charges.get(code="fee").price == Decimal("1.20")

    def test_errors_name_paths_inside_the_plan(self, demo, clerk):
        bad = {**self.PLAN, "allowances": [{"service": "fax", "amount": "5", "unit": "megabyte"}]}
        with pytest.raises(ValidationFailed) as caught:
            apply_plan(bad, actor=clerk, source="POST /plans")
        assert str(caught.value) == "POST /plans: allowances[0].service: unknown service 'fax'"
        assert not PricePlan.objects.filter(code="iot").exists()

    def test_the_currency_of_a_plan_never_changes(self, demo, clerk):
        apply_plan(self.PLAN, actor=clerk, effective_from=date(2026, 1, 1))
        with pytest.raises(ValidationFailed) as caught:
            apply_plan({**self.PLAN, "currency": "USD"}, actor=clerk, effective_from=date(2026, 2, 1))
        assert str(caught.value) == ("api: currency: cannot change from EUR to USD: "
                                     "the versions of plan 'iot' are priced in it; use a new code instead")
        assert PricePlan.objects.get(code="iot").currency == "EUR"

    def test_a_reader_is_refused(self, demo, reader):
        with pytest.raises(Forbidden):
            apply_plan(self.PLAN, actor=reader)


def test_copy_version_starts_tomorrow_with_the_same_content(demo, clerk):
    plan = PricePlan.objects.get(code="business-seats")
    with frozen(date(2026, 5, 10)):
        copy = services.copy_version(plan.latest_version(), actor=clerk)
    assert (copy.number, copy.effective_from) == (2, date(2026, 5, 11))
    assert services.version_content(copy) == services.version_content(plan.version_at(date(2026, 5, 10)))
    assert copy.content_hash == plan.version_at(date(2026, 5, 10)).content_hash
    assert ChargeTier.objects.filter(charge__version=copy).count() == 6
    assert history(copy).get().changes["copied_from"] == 1
