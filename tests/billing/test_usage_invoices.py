"""Usage on invoices from the database (billing/events.usage_of): the rated records of a postpaid
account summed per service, destination group and usage period, named by the plan's usage charge;
prepaid usage left alone; a late record added on the next invoice. Amounts worked out by hand."""
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.catalog.models import Charge, PricePlanVersion, Service
from obol.core.tenancy import current_tenant
from obol.subscriptions import services as subscriptions
from obol.usage.models import RatedRecord
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def record(subscription, key, day, *, seconds, micros, included=0, group="national", service="voice",
           destination="", accrued=None, cycle_start=None):
    """A rated record; its price accrued (is owed on an invoice) unless the account is prepaid, as
    rating decides (a hybrid account's record accrues when its money pockets did not cover it)."""
    accrued = subscription.account.mode != "prepaid" if accrued is None else accrued
    return RatedRecord.objects.create(
        tenant=current_tenant(), record_key=key, account=subscription.account, subscription=subscription,
        service=service, cycle_start=cycle_start or date(day.year, day.month, 1), destination=destination,
        start=datetime(day.year, day.month, day.day, 10, tzinfo=UTC),
        quantity=seconds + included, destination_group=group, included=included, charged=seconds, billed=seconds,
        price_micros=micros, currency="EUR", accrued_micros=micros if accrued else 0)


@pytest.fixture
def plan(in_tenant):
    plan = make_plan("talk", price="10.00")
    voice = Service.objects.create(tenant=in_tenant, code="voice", name="Calls", kind="voice", unit="second")
    Charge.objects.create(tenant=in_tenant, version=PricePlanVersion.objects.get(plan=plan), code="calls",
                          name="Calls", kind=Charge.Kind.USAGE, service=voice, rate_table="voice", position=1)
    return plan


def usage_lines(invoice):
    return [(line.name, line.label, str(line.service_start), line.amount)
            for line in invoice.lines.filter(kind="usage").order_by("position")]


def test_a_postpaid_accounts_usage_is_on_the_invoice_after_its_month(vat, system, plan):
    postpaid = subscriptions.subscribe(system, make_account("A-1", mode="postpaid"), plan, start_date=date(2026, 11, 1))
    prepaid = subscriptions.subscribe(system, make_account("A-2", mode="prepaid"), plan, start_date=date(2026, 11, 1))
    record(postpaid, "r1", date(2026, 11, 3), seconds=600, micros=1_234_567, included=3000)  # overage after 50 min
    record(postpaid, "r2", date(2026, 11, 20), seconds=120, micros=246_913)
    record(postpaid, "r3", date(2026, 11, 21), seconds=60, micros=990_000, group="international")
    record(postpaid, "r4", date(2026, 12, 2), seconds=60, micros=500_000)  # December: not ended on 1 December
    record(prepaid, "p1", date(2026, 11, 4), seconds=600, micros=1_234_567)  # paid from its pockets
    billing.issue(system, billing.accept(system, billing.generate(system, postpaid.account, date(2026, 11, 1))),
                  date(2026, 11, 1))
    december = billing.generate(system, postpaid.account, date(2026, 12, 1))
    assert usage_lines(december) == [
        ("Calls – international", "60 second", "2026-11-01", D("0.99")),
        ("Calls – national", "720 second, 3000 included", "2026-11-01", D("1.48")),  # 1.481480 rounds to 1.48
    ]
    assert december.net == D("12.47")  # 10.00 for December in advance + 0.99 + 1.48
    assert december.tax == D("2.37")  # 19% of 12.47 = 2.3693
    assert usage_lines(billing.generate(system, prepaid.account, date(2026, 12, 1))) == []
    billing.issue(system, billing.accept(system, december), date(2026, 12, 1))

    record(postpaid, "r5", date(2026, 11, 30), seconds=60, micros=123_456)  # a late file, after the invoice
    january = billing.generate(system, postpaid.account, date(2027, 1, 1))
    assert usage_lines(january) == [
        ("Calls – national", "60 second", "2026-11-01", D("0.12")),  # 1.604936 -> 1.60, less the 1.48 invoiced
        ("Calls – national", "60 second", "2026-12-01", D("0.50")),
    ]


def test_an_account_that_asks_for_it_gets_its_calls_listed_on_the_invoice(vat, system, plan):
    import io

    from pypdf import PdfReader

    from obol.billing import documents

    itemised = subscriptions.subscribe(system, make_account("A-1", mode="postpaid", itemised_usage=True), plan,
                                       start_date=date(2026, 11, 1))
    plain = subscriptions.subscribe(system, make_account("A-2", mode="postpaid"), plan, start_date=date(2026, 11, 1))
    for subscription in (itemised, plain):
        record(subscription, f"{subscription.pk}-1", date(2026, 11, 3), seconds=600, micros=1_234_567,
               destination="4930123456")
        record(subscription, f"{subscription.pk}-2", date(2026, 11, 21), seconds=60, micros=990_000,
               group="international", destination="33140000000")
        record(subscription, f"{subscription.pk}-3", date(2026, 12, 2), seconds=60, micros=500_000,
               destination="4940999999")  # December's: on the next invoice

    def pdf_text(subscription):
        invoice = billing.issue(system, billing.accept(system, billing.generate(
            system, subscription.account, date(2026, 12, 1))), date(2026, 12, 1))
        return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(documents.pdf_of(invoice))).pages)

    listed = pdf_text(itemised)
    assert "Itemised usage" in listed
    assert "2026-11-03 10:00:00" in listed and "4930123456" in listed and "1.234567" in listed  # at rating precision
    assert "33140000000" in listed and "0.990000" in listed
    assert "4940999999" not in listed  # December's call is not on this invoice
    unlisted = pdf_text(plain)
    assert "Calls – national" in unlisted and "Itemised usage" not in unlisted and "4930123456" not in unlisted


def test_a_hybrid_account_is_invoiced_the_usage_its_money_pockets_did_not_cover(vat, system, plan):
    hybrid = subscriptions.subscribe(system, make_account("A-1", mode="hybrid"), plan, start_date=date(2026, 11, 1))
    record(hybrid, "h1", date(2026, 11, 3), seconds=600, micros=2_000_000, accrued=False)  # paid from its balance
    record(hybrid, "h2", date(2026, 11, 20), seconds=120, micros=750_000, accrued=True)  # beyond it: accrued
    invoice = billing.generate(system, hybrid.account, date(2026, 12, 1))
    assert usage_lines(invoice) == [("Calls – national", "120 second", "2026-11-01", D("0.75"))]
