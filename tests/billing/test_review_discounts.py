"""Review of promotions' discounts on invoices (134487f: events.discounts_of, billing/discounts.py)
with bill periods (1be8c04) and repairs as credit notes (9c0a4fb). Amounts worked out by hand.

Each test was written failing against a defect a second read found (its comments say what happened
before the fix); all are fixed now, and the tests keep them fixed.
"""
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from obol.balances import promotions
from obol.billing import services as billing
from obol.billing.models import BillingSettings, Invoice
from obol.core.clock import frozen
from obol.core.errors import ValidationFailed
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def discount_lines(invoice):
    return [(str(line.service_start), line.amount) for line in invoice.lines.filter(kind="discount")
            .order_by("position")] if invoice else []


def promotion(system, code, **terms):
    return promotions.create_promotion(system, code=code, name=code.title(), kind="discount", trigger="code",
                                       charge_kinds=["recurring"], valid_from=datetime(2025, 1, 1, tzinfo=UTC),
                                       **terms)


def test_a_discount_given_long_ago_is_not_taken_back(vat, system):
    plan = make_plan("basic", price="30.00")
    promotion(system, "SAVE20", discount_type="percent", discount_percent=D(20), discount_periods=2)
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 11, 1))
    with frozen(date(2026, 11, 1)):
        promotions.apply_code(system, subscription, "SAVE20")  # 1 November 2026 to 1 January 2027
    account = subscription.account
    november = issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    december = issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    assert discount_lines(november) + discount_lines(december) == [("2026-11-01", D("-6.00")),
                                                                   ("2026-11-01", D("-6.00"))]  # 20% of 30.00
    # 1 March 2028 less 400 days is 26 January 2027: the application (to 1 January 2027) is not read any more.
    # Nothing about the discount changed; before the fix the run takes the 12.00 back (+12.00).
    later = billing.generate(system, account, date(2028, 3, 1))
    assert discount_lines(later) == []


def test_a_quarterly_account_gets_a_monthly_amount_off_for_every_month_it_pays_in_advance(vat, system):
    plan = make_plan("basic", price="30.00")
    promotion(system, "FIVEOFF", discount_type="amount", discount_amount=D("5.00"), discount_currency="EUR",
              discount_periods=3)
    account = make_account(bill_period="quarter", bill_cycle_month=1)
    subscription = subscriptions.subscribe(system, account, plan, start_date=date(2027, 1, 1))
    with frozen(date(2027, 1, 1)):
        promotions.apply_code(system, subscription, "FIVEOFF")  # 5.00 off a month, 1 January to 1 April
    invoice = billing.generate(system, account, date(2027, 1, 1))
    # January, February and March at 30.00 each (90.00), each month 5.00 off: 75.00, VAT 14.25, gross 89.25.
    # Before the fix only January's 5.00 is off (net 85.00); February's and March's come on 1 April.
    assert discount_lines(invoice) == [("2027-01-01", D("-5.00")), ("2027-02-01", D("-5.00")),
                                       ("2027-03-01", D("-5.00"))]
    assert (invoice.net, invoice.tax, invoice.gross) == (D("75.00"), D("14.25"), D("89.25"))


@pytest.fixture
def discounted_december(vat, system, in_tenant):
    """Repairs as credit notes; 31.00 a month from 1 December 2026 with SAVE20 (20% for six months):
    December invoiced and issued, 24.80 net, VAT 4.71, gross 29.51. (subscription, its invoice)"""
    BillingSettings.objects.create(tenant=in_tenant, repairs="credit_note")
    plan = make_plan("basic", price="31.00")
    promotion(system, "SAVE20", discount_type="percent", discount_percent=D(20), discount_periods=6)
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 12, 1))
    with frozen(date(2026, 12, 1)):
        promotions.apply_code(system, subscription, "SAVE20")
    december = issued(system, billing.generate(system, subscription.account, date(2026, 12, 1)), date(2026, 12, 1))
    assert (december.net, december.tax, december.gross) == (D("24.80"), D("4.71"), D("29.51"))  # 31.00 - 6.20
    return subscription, december


def test_a_back_dated_termination_credit_note_takes_the_discount_into_account(system, discounted_december):
    subscription, december = discounted_december
    account = subscription.account
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 11), reason="moved away")
    made = billing.generate(system, account, date(2027, 1, 1))
    # 11-31 December (21 of 31 days) are taken back: 21.00 of charge less 4.20 of discount = 16.80 net,
    # VAT 3.19 (19% of 16.80 = 3.192), gross 19.99, all on the credit note of December's invoice.
    # Before the fix: a credit note of -21.00 (VAT -3.99, -24.99) and a new invoice of +4.20 (VAT 0.80, 5.00).
    day = Invoice.objects.filter(account=account, invoice_date=date(2027, 1, 1)).exclude(state="cancelled")
    assert [(i.kind, i.net, i.tax, i.gross) for i in day] == [
        ("credit_note", D("-16.80"), D("-3.19"), D("-19.99"))]
    assert made.kind == "credit_note"


def test_discounts_together_never_take_more_than_the_charges(vat, system):
    plan = make_plan("basic", price="30.00")
    promotion(system, "WELCOME", discount_type="first_period_free")
    promotion(system, "FIVEOFF", discount_type="amount", discount_amount=D("5.00"), discount_currency="EUR",
              discount_periods=3)
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 11, 1))
    with frozen(date(2026, 11, 1)):
        promotions.apply_code(system, subscription, "WELCOME")  # November free
        promotions.apply_code(system, subscription, "FIVEOFF")  # 5.00 off a month, November to January
    november = billing.generate(system, subscription.account, date(2026, 11, 1))
    # November's 30.00 is free: nothing is left for the 5.00 to take. Before the fix: 30.00 - 30.00 - 5.00 = -5.00,
    # an invoice of -5.95 gross that pays the customer for taking the offer.
    assert sum((line.amount for line in november.lines.filter(kind="discount")), D(0)) == D("-30.00")
    assert (november.net, november.gross) == (D("0.00"), D("0.00"))


def test_a_partial_credit_note_of_a_discounted_invoice_never_credits_more_than_it_charged(vat, system):
    plan = make_plan("basic", price="30.00")
    promotion(system, "SAVE20", discount_type="percent", discount_percent=D(20), discount_periods=6)
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 11, 1))
    with frozen(date(2026, 11, 1)):
        promotions.apply_code(system, subscription, "SAVE20")
    november = issued(system, billing.generate(system, subscription.account, date(2026, 11, 1)), date(2026, 11, 1))
    assert (november.net, november.tax, november.gross) == (D("24.00"), D("4.56"), D("28.56"))  # 30.00 - 6.00
    fee = november.lines.get(kind="recurring")
    # The clerk credits the monthly fee in full (goodwill for an outage). The customer was charged 24.00 and
    # 4.56 of VAT for it. Before the fix the note is -30.00, VAT -5.70, gross -35.70: 7.14 more than the invoice.
    with pytest.raises(ValidationFailed, match="24.00 EUR left to credit"):  # the invoice charged 24.00 for it
        billing.credit_note(system, november, {fee.pk: D("30.00")})
    note = billing.credit_note(system, november, {fee.pk: D("24.00")})
    assert (note.net, note.tax) == (-november.net, -november.tax)  # everything charged, VAT 4.56, no more


def test_a_repairs_credit_note_of_a_discounted_invoice_never_exceeds_it(system, discounted_december):
    subscription, december = discounted_december
    account = subscription.account
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 2), reason="changed their mind")
    billing.generate(system, account, date(2027, 1, 1))
    note = Invoice.objects.get(kind="credit_note", credited=december)
    # 2-31 December are taken back: 30.00 less its 20% (6.00) = 24.00, VAT 4.56 (19% of 24.00), gross 28.56;
    # 1 December stays billed (0.80 net). Before the fix the note is -30.00, VAT -5.70, gross -35.70: more net and
    # more VAT than the whole invoice charged (24.80, 4.71), and a new invoice of +6.00 (VAT 1.14) follows.
    assert -note.tax <= december.tax
    assert (note.net, note.tax, note.gross) == (D("-24.00"), D("-4.56"), D("-28.56"))
