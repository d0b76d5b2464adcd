"""Review of repairs as a credit note (9c0a4fb: services.generate_many, _split_repairs,
BillingSettings.repairs) next to services.credit_note: a VAT rate that changed since the corrected
invoice, a line already partly credited, a repair credit note draft cancelled after a clerk's whole
credit note. Amounts worked out by hand.

Each test was written failing against a defect a second read found (its comments say what happened
before the fix); all are fixed now, and the tests keep them fixed. The tests whose docstring says "Guard" were right
from the start and guard a case that was checked.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import BillingSettings, Invoice, InvoiceLine, TaxRate
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def lines(invoice):
    return [(str(line.service_start), str(line.service_end), line.amount)
            for line in invoice.lines.order_by("position")]


@pytest.fixture
def december(system, in_tenant):
    """Repairs as credit notes; a 31.00/month subscription from 1 December 2026, December invoiced and
    issued (31.00, VAT 19% 5.89, gross 36.89), then terminated with effect from 11 December."""
    BillingSettings.objects.create(tenant=in_tenant, repairs="credit_note")
    plan = make_plan("basic", price="31.00")
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 12, 1))
    invoice = issued(system, billing.generate(system, subscription.account, date(2026, 12, 1)), date(2026, 12, 1))
    assert (invoice.net, invoice.tax, invoice.gross) == (D("31.00"), D("5.89"), D("36.89"))
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 11), reason="moved away")
    return invoice


def recurring_total(account):
    """What the account's invoices and credit notes not cancelled bill for the subscription's fee."""
    return sum((line.amount for line in InvoiceLine.objects.filter(invoice__account=account, kind="recurring")
                .exclude(invoice__state=Invoice.State.CANCELLED)), D(0))


def test_a_repairs_credit_note_takes_back_vat_at_the_rate_the_invoice_charged(system, in_tenant):
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("19"),
                           valid_from=date(2020, 1, 1), valid_to=date(2027, 1, 1))
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("16"),
                           valid_from=date(2027, 1, 1))
    BillingSettings.objects.create(tenant=in_tenant, repairs="credit_note")
    plan = make_plan("basic", price="31.00")
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 12, 1))
    december = issued(system, billing.generate(system, subscription.account, date(2026, 12, 1)), date(2026, 12, 1))
    assert december.tax == D("5.89")  # 19% of 31.00
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 11), reason="moved away")
    note = billing.generate(system, subscription.account, date(2027, 1, 1))
    assert (note.kind, note.credited) == ("credit_note", december)
    # 21 of December's 31 days at 1.00 were charged 19% VAT: the note takes back 19% of 21.00 = 3.99,
    # as services.credit_note would. Before the fix: 16% of 21.00 = 3.36, and its line says 16%.
    assert [(t.rate, t.taxable, t.tax) for t in note.taxes.all()] == [(D("19"), D("-21.00"), D("-3.99"))]
    assert (note.net, note.tax, note.gross) == (D("-21.00"), D("-3.99"), D("-24.99"))


def test_a_repair_of_a_partly_credited_line_never_credits_more_than_the_invoice(vat, system, december):
    account = december.account
    [line] = december.lines.all()
    goodwill = issued(system, billing.credit_note(system, december, {line.pk: D("20.00")}), date(2026, 12, 15))
    assert (goodwill.net, goodwill.tax) == (D("-20.00"), D("-3.80"))
    note = billing.generate(system, account, date(2027, 1, 1))
    assert note.kind == "credit_note"
    # December charged 31.00 and 5.89 of VAT; 20.00 and 3.80 are already credited: at most 11.00 and 2.09
    # are left to credit. Before the fix the repair credits 21.00 (21 of 31 days) with 3.99 of VAT (19% of 41.00 less
    # 3.80): 41.00 and 7.79 credited on an invoice of 31.00 and 5.89.
    notes = Invoice.objects.filter(credited=december).exclude(state=Invoice.State.CANCELLED)
    assert -sum((n.net for n in notes), D(0)) <= december.net
    assert -sum((n.tax for n in notes), D(0)) <= december.tax


def test_cancelling_a_repairs_credit_note_after_a_whole_credit_note_bills_only_the_days_used(system, vat,
                                                                                             december):
    account = december.account
    repair = billing.generate(system, account, date(2027, 1, 1))
    assert lines(repair) == [("2026-12-11", "2027-01-01", D("-21.00"))]  # the draft: 21 of 31 days
    # a clerk credits December whole meanwhile: what is left of its line once the draft is counted, 10.00
    whole = issued(system, billing.credit_note(system, december), date(2027, 1, 2))
    assert lines(whole) == [("2026-12-01", "2026-12-11", D("-10.00"))]  # the days the draft leaves: 1-10 December
    billing.cancel(system, repair, reason="run redone")
    billing.generate(system, account, date(2027, 2, 1))
    # 1-10 December were used: 10.00 in all is owed (31.00 - 10.00 - 21.00 + 10.00 again, or 31.00 - 21.00).
    # Before the fix the cancelled draft's 21 days stay credited by the whole note's dates: 31.00 - 10.00 + 10.00
    # (1-10 December billed again) = 31.00 for ten days.
    assert recurring_total(account) == D("10.00")


def test_a_cancelled_repairs_credit_note_is_proposed_again(system, vat, december):
    """Guard (passes): a repairs credit note draft cancelled is proposed again by the next run, once."""
    account = december.account
    first = billing.generate(system, account, date(2027, 1, 1))
    billing.cancel(system, first, reason="redo")
    again = billing.generate(system, account, date(2027, 1, 1))
    assert (again.kind, again.credited, lines(again)) == ("credit_note", december,
                                                          [("2026-12-11", "2027-01-01", D("-21.00"))])
    assert billing.generate(system, account, date(2027, 1, 1)) is None
    note = issued(system, again, date(2027, 1, 1))
    december.refresh_from_db()
    assert (note.gross, december.open_amount) == (D("-24.99"), D("11.90"))  # 36.89 - 24.99
    assert recurring_total(account) == D("10.00")  # 1-10 December


def test_a_bill_run_issues_an_invoice_and_a_repairs_credit_note_for_one_account(system, vat, december):
    """Guard (passes): a run whose account gets new charges and a repair issues both, each from its
    own series, and the note lowers the corrected invoice's open amount."""
    from obol.billing import billrun

    account = december.account
    other = make_plan("extra", price="10.00")
    subscriptions.subscribe(system, account, other, start_date=date(2027, 1, 1))
    run = billrun.start(system, date(2027, 1, 1))
    billrun.generate(system, run)
    billrun.apply(system, run, "accept")
    billrun.apply(system, run, "issue", on=date(2027, 1, 1))
    made = {i.kind: i for i in Invoice.objects.filter(bill_run=run)}
    assert (made["invoice"].number, made["invoice"].net, made["invoice"].gross) == ("INV/2027/000001", D("10.00"),
                                                                                      D("11.90"))
    assert (made["credit_note"].number, made["credit_note"].credited, made["credit_note"].gross) == (
        "CN/2027/000001", december, D("-24.99"))  # 21 of 31 days of 31.00, VAT 3.99
    december.refresh_from_db()
    assert december.open_amount == D("11.90")  # 36.89 - 24.99


def test_a_bill_run_with_a_repairs_credit_note_counts_accounts_and_money_right(system, vat, december):
    from obol.billing import billrun

    account = december.account
    subscriptions.subscribe(system, account, make_plan("extra", price="10.00"), start_date=date(2027, 1, 1))
    make_account("A-2")  # due on 1 January, nothing to bill
    run = billrun.start(system, date(2027, 1, 1))
    summary = billrun.generate(system, run)
    run.refresh_from_db()
    assert (run.accounts, run.nothing_due) == (2, 1)  # before the fix: nothing_due 0 (2 accounts - 2 documents)
    assert summary.gross == {"EUR": "-13.09"}  # 11.90 invoiced, -24.99 credited; before the fix "11.90"
