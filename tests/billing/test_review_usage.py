"""Review of usage on invoices (134487f: events.usage_of, billing/usage_charges.py) against the
database: what happens to usage already invoiced when the records are no longer read, when usage is
re-rated lower across two invoices, and when a whole credit note is re-billed. Amounts by hand.

Each test was written failing against a defect a second read found (its comments say what happened
before the fix); all are fixed now, and the tests keep them fixed.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import BillingSettings, InvoiceLine
from obol.customers import services as customers
from obol.subscriptions import services as subscriptions
from obol.usage.models import RatedRecord
from tests.billing.test_usage_invoices import plan  # noqa: F401 - the fixture
from tests.billing.test_usage_invoices import record as usage_record
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def record(subscription, key, day, **fields):
    """A rated call without destination group (tests/billing/test_usage_invoices.py's helper)."""
    return usage_record(subscription, key, day, group="", **fields)


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def usage(invoice):
    return [(str(line.service_start), line.label, line.amount)
            for line in invoice.lines.filter(kind="usage").order_by("position")] if invoice else []


@pytest.fixture
def november_usage_invoiced(vat, system, plan):
    """A postpaid subscription from 1 November 2026 with 3.00 of November calls (1.00 on 3 November,
    2.00 on 28 November), invoiced and issued on 1 December 2026 (with December's 10.00 fee)."""
    subscription = subscriptions.subscribe(system, make_account(mode="postpaid"), plan, start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, subscription.account, date(2026, 11, 1)), date(2026, 11, 1))
    record(subscription, "r1", date(2026, 11, 3), seconds=60, micros=1_000_000)
    record(subscription, "r2", date(2026, 11, 28), seconds=120, micros=2_000_000)
    december = issued(system, billing.generate(system, subscription.account, date(2026, 12, 1)), date(2026, 12, 1))
    assert usage(december) == [("2026-11-01", "180 second", D("3.00"))]
    return subscription


def test_usage_invoiced_long_ago_is_not_credited_once_its_records_are_past_the_lookback(system,
                                                                                        november_usage_invoiced):
    account = november_usage_invoiced.account
    # 1 January 2028 less 400 days is 27 November 2026: the record of 3 November (1.00) is no longer read,
    # the one of 28 November (2.00) still is. November 2026 was invoiced once (3.00) and nothing changed.
    # Before the fix: a usage line of -1.00 for November 2026 (and -2.00 more on 1 February 2028).
    invoice = billing.generate(system, account, date(2028, 1, 1))
    assert [line for line in usage(invoice) if line[0] == "2026-11-01"] == []


def test_usage_invoiced_while_postpaid_is_not_credited_when_the_account_turns_prepaid(system,
                                                                                       november_usage_invoiced):
    account = november_usage_invoiced.account
    customers.update_account(system, account, reason="customer asked for prepaid", mode="prepaid")
    # November's usage (3.00) was postpaid usage, invoiced and owed. Before the fix: -3.00 on the January invoice.
    january = billing.generate(system, account, date(2027, 1, 1))
    assert usage(january) == []


def test_a_rerate_lower_never_credits_a_line_beyond_its_amount(system, november_usage_invoiced, in_tenant):
    subscription = november_usage_invoiced
    account = subscription.account
    late = record(subscription, "r3", date(2026, 11, 30), seconds=300, micros=5_000_000)  # a late file: 5.00
    january = issued(system, billing.generate(system, account, date(2027, 1, 1)), date(2027, 1, 1))
    assert usage(january) == [("2026-11-01", "300 second", D("5.00"))]  # November: 8.00, of which 3.00 invoiced
    # re-rating: the late records were duplicates (0.00) and the others cost 0.50 in all, not 3.00
    RatedRecord.objects.filter(pk=late.pk).update(price_micros=0, accrued_micros=0)
    RatedRecord.objects.filter(record_key="r1").update(price_micros=200_000, accrued_micros=200_000)
    RatedRecord.objects.filter(record_key="r2").update(price_micros=300_000, accrued_micros=300_000)
    BillingSettings.objects.create(tenant=in_tenant, repairs="credit_note")
    made = billing.generate(system, account, date(2027, 2, 1))
    # November is now 0.50: 7.50 to take back, 5.00 from January's line and 2.50 from December's (3.00).
    # Before the fix one credit of -7.50 reverses January's 5.00 line, on one credit note of January's invoice
    # (net -7.50, VAT -1.43, where January's usage line charged 5.00 and 0.95 of VAT); December's invoice,
    # which billed 3.00 of it, is not corrected at all.
    credits = InvoiceLine.objects.filter(kind="usage", amount__lt=0).exclude(invoice__state="cancelled")
    assert sum((c.amount for c in credits), D(0)) == D("-7.50")
    for credit in credits:
        assert -credit.amount <= credit.reverses.amount, (credit.amount, credit.reverses.amount)
    assert made is not None


def test_usage_rebilled_after_a_whole_credit_note_says_its_units(system, november_usage_invoiced):
    account = november_usage_invoiced.account
    december = account.invoices.get(invoice_date=date(2026, 12, 1))
    issued(system, billing.credit_note(system, december), date(2026, 12, 2))
    again = billing.generate(system, account, date(2026, 12, 2))  # cancel and re-bill: 10.00 and 3.00 again
    assert usage(again) == [("2026-11-01", "180 second", D("3.00"))]  # before the fix: "0 second"


def test_usage_paid_from_pockets_while_prepaid_is_not_invoiced_after_turning_postpaid(vat, system, plan):
    subscription = subscriptions.subscribe(system, make_account(mode="prepaid"), plan, start_date=date(2026, 10, 1))
    account = subscription.account
    record(subscription, "p1", date(2026, 10, 12), seconds=600, micros=4_000_000)  # paid from the pocket
    record(subscription, "p2", date(2026, 11, 20), seconds=300, micros=2_000_000)  # paid from the pocket
    customers.update_account(system, account, reason="moved to a contract", mode="postpaid")
    record(subscription, "c1", date(2026, 12, 3), seconds=60, micros=1_000_000)  # postpaid from here on
    january = billing.generate(system, account, date(2027, 1, 1))
    # Only December's call (1.00) is owed on an invoice. Before the fix October's 4.00 and November's 2.00, which the
    # customer already paid from the prepaid pocket, are invoiced as well.
    assert usage(january) == [("2026-12-01", "60 second", D("1.00"))]
