"""Invoices from subscriptions (billing/services.py), through the services as a billing clerk runs
them: generate, accept, issue; repairs after back-dated changes; numbers; the audit trail. Amounts
are worked out by hand in each test."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import BillingSettings, Invoice, TaxRate
from obol.core.audit import history
from obol.core.errors import IllegalTransition
from obol.core.tenancy import current_tenant
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def vat(in_tenant):
    TaxRate.objects.create(tenant=in_tenant, country="DE", category="standard", rate=D("19"), valid_from=date(2020, 1, 1))


def lines(invoice):
    return [(line.label, str(line.service_start), str(line.service_end), line.amount)
            for line in invoice.lines.order_by("position")]


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def test_activation_mid_month_bills_the_rest_of_the_month_then_the_next_in_advance(vat, system):
    plan = make_plan("basic", price="30.00")
    account = make_account()
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 16))
    first = billing.generate(system, account, date(2026, 11, 16))
    assert lines(first) == [("Basic", "2026-11-16", "2026-12-01", D("15.00"))]
    assert (first.net, first.tax, first.gross) == (D("15.00"), D("2.85"), D("17.85"))  # 19% of 15.00
    assert billing.generate(system, account, date(2026, 11, 16)) == first  # the same run again: the same draft
    first = issued(system, first, date(2026, 11, 16))
    assert (first.number, first.due_date, first.open_amount) == ("INV/2026/000001", date(2026, 11, 30), D("17.85"))
    second = billing.generate(system, account, date(2026, 12, 1))
    assert lines(second) == [("Basic", "2026-12-01", "2027-01-01", D("30.00"))]
    assert second.gross == D("35.70")


def test_a_back_dated_termination_is_credited_on_the_next_invoice(vat, system):
    plan = make_plan("basic", price="31.00")
    account = make_account()
    subscription = subscriptions.subscribe(system, account, plan, start_date=date(2026, 12, 1))
    december = issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    assert lines(december) == [("Basic", "2026-12-01", "2027-01-01", D("31.00"))]
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 11), reason="moved away")
    repair = billing.generate(system, account, date(2027, 1, 1))
    assert lines(repair) == [("Basic", "2026-12-11", "2027-01-01", D("-21.00"))]  # 21 of 31 days, no January
    assert repair.lines.get().reverses == december.lines.get()
    assert repair.gross == D("-24.99")  # 19% of -21.00 = -3.99


def test_a_plan_change_credits_the_old_plan_and_charges_the_new_one(vat, system):
    plan_a, plan_b = make_plan("plan-a", price="30.00"), make_plan("plan-b", price="60.00")
    account = make_account()
    subscription = subscriptions.subscribe(system, account, plan_a, start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    subscriptions.change_plan(system, subscription, plan_b, date(2026, 11, 21))
    change = billing.generate(system, account, date(2026, 11, 21))
    assert lines(change) == [("Plan-A", "2026-11-21", "2026-12-01", D("-10.00")),
                             ("Plan-B", "2026-11-21", "2026-12-01", D("20.00"))]


def test_a_cancelled_draft_is_proposed_again_and_an_issued_invoice_cannot_move_back(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    draft = billing.generate(system, account, date(2026, 11, 1))
    billing.cancel(system, draft, reason="wrong plan")
    again = billing.generate(system, account, date(2026, 11, 1))
    assert again != draft and lines(again) == lines(draft)
    invoice = issued(system, again, date(2026, 11, 2))
    with pytest.raises(IllegalTransition, match="is issued; cannot cancel it"):
        billing.cancel(system, invoice)
    assert [event.action for event in history(invoice)] == ["invoice.issued", "invoice.accepted", "invoice.generated"]
    assert billing.generate(system, account, date(2026, 11, 2)) is None  # November is on an invoice


def test_numbers_follow_the_tenants_pattern_and_restart_each_month_it_names(vat, system):
    billing.BillingSettings.objects.create(tenant=current_tenant(), number_pattern="FV/{yyyy}/{mm}/{seq:06}")
    numbers = []
    for n, day in enumerate([date(2026, 11, 1), date(2026, 11, 30), date(2026, 12, 1)]):
        account = make_account(f"A-{n}")
        subscriptions.subscribe(system, account, make_plan(f"p{n}", price="1.00"), start_date=day)
        numbers.append(issued(system, billing.generate(system, account, day), day).number)
    assert numbers == ["FV/2026/11/000001", "FV/2026/11/000002", "FV/2026/12/000001"]


def test_a_missing_vat_rate_is_named(in_tenant, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    with pytest.raises(Exception, match="no VAT rate for 'standard' in DE on 2026-11-01"):
        billing.generate(system, account, date(2026, 11, 1))
    assert not Invoice.objects.exists()


def test_numbers_follow_dates_an_invoice_is_not_issued_before_the_last_one(vat, system):
    numbers = []
    for n, day in enumerate([date(2026, 11, 20), date(2026, 11, 19)]):
        account = make_account(f"A-{n}")
        subscriptions.subscribe(system, account, make_plan(f"p{n}", price="1.00"), start_date=date(2026, 11, 1))
        numbers.append(billing.accept(system, billing.generate(system, account, date(2026, 11, 1))))
    first = billing.issue(system, numbers[0], date(2026, 11, 20))
    with pytest.raises(IllegalTransition, match=r"issue date 2026-11-19 is before INV/2026/000001 of 2026-11-20"):
        billing.issue(system, numbers[1], date(2026, 11, 19))
    assert billing.issue(system, numbers[1], date(2026, 11, 20)).number == "INV/2026/000002"
    assert first.number == "INV/2026/000001"


def test_a_back_dated_termination_is_credited_by_a_credit_note_when_so_configured(vat, system, in_tenant):
    BillingSettings.objects.create(tenant=in_tenant, repairs="credit_note")
    plan = make_plan("basic", price="31.00")
    account = make_account()
    subscription = subscriptions.subscribe(system, account, plan, start_date=date(2026, 12, 1))
    december = issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    subscriptions.transition(system, subscription, "terminate", date(2026, 12, 11), reason="moved away")
    note = billing.generate(system, account, date(2027, 1, 1))  # nothing else is due: only the credit note
    assert (note.kind, note.credited, note.state) == ("credit_note", december, "draft")
    assert lines(note) == [("Basic", "2026-12-11", "2027-01-01", D("-21.00"))]  # 21 of 31 days
    assert (note.net, note.tax, note.gross) == (D("-21.00"), D("-3.99"), D("-24.99"))
    assert billing.generate(system, account, date(2027, 1, 1)) is None  # the same run again adds nothing
    note = issued(system, note, date(2027, 1, 1))
    december.refresh_from_db()
    assert note.number == "CN/2027/000001"
    assert december.open_amount == D("11.90")  # 36.89 less 24.99
