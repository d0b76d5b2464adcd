"""The receivables ledger (billing/journal.py): issuing posts receivables, revenue per product
account and VAT; a credit note posts them back; every entry balances; a period exports as CSV."""
import csv
import io
from datetime import date
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from obol.billing import billrun, journal
from obol.billing import services as billing
from obol.billing.models import BillingSettings, Invoice, JournalLine
from obol.catalog.models import Charge, Product
from obol.core.tenancy import current_tenant
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import vat  # noqa: F401 - fixture
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def plan_of(code, price, revenue_account=""):
    plan = make_plan(code, price=price)
    if revenue_account:
        product = Product.objects.create(tenant=current_tenant(), code=code, name=code, revenue_account=revenue_account)
        Charge.objects.filter(version__plan=plan).update(product=product)
    return plan


def postings(invoice):
    return sorted((line.account, line.debit, line.credit) for line in invoice.journal_entry.lines.all())


@pytest.fixture
def run(vat, system):  # noqa: F811
    basic, extra = plan_of("basic", "30.00", "8400"), plan_of("extra", "5.00")
    for number in ("A-1", "A-2"):
        account = make_account(number)
        subscriptions.subscribe(system, account, basic, start_date=date(2026, 11, 1))
        subscriptions.subscribe(system, account, extra, start_date=date(2026, 11, 1))
    found = billrun.start(system, date(2026, 11, 1))
    billrun.generate(system, found)
    billrun.apply(system, found, "accept")
    billrun.apply(system, found, "issue", on=date(2026, 11, 1))
    return found


def test_issuing_posts_receivables_revenue_per_product_account_and_vat(run):
    first = Invoice.objects.get(account__number="A-1")
    assert postings(first) == [("1200", D("41.65"), D("0")),  # gross: 35.00 + 19%
                               ("2200:19", D("0"), D("6.65")),
                               ("4000", D("0"), D("5.00")),  # the product without its own account
                               ("8400", D("0"), D("30.00"))]


def test_a_credit_note_posts_back_and_the_ledger_balances(run, system):
    first = Invoice.objects.get(account__number="A-1")
    basic = first.lines.get(revenue_account="8400")
    note = billing.issue(system, billing.accept(system, billing.credit_note(system, first, {basic.pk: D("10.00")})),
                         date(2026, 11, 20))
    assert postings(note) == [("1200", D("0"), D("11.90")), ("2200:19", D("1.90"), D("0")),
                              ("8400", D("10.00"), D("0"))]
    assert journal.unbalanced() == []
    lines = JournalLine.objects.all()
    debits, credits = sum(line.debit for line in lines), sum(line.credit for line in lines)
    assert debits == credits == D("95.20")  # 2 x 41.65 + 11.90
    receivable = sum(line.debit - line.credit for line in lines.filter(account="1200"))
    assert receivable == D("71.40")  # what the two invoices and the credit note leave owed


def test_prices_with_tax_spread_each_rates_net_over_the_revenue_accounts(vat, system):  # noqa: F811
    BillingSettings.objects.create(tenant=current_tenant(), prices_include_tax=True)
    account = make_account()
    for code, account_code in (("basic", "8400"), ("extra", "8410")):
        subscriptions.subscribe(system, account, plan_of(code, "11.90", account_code), start_date=date(2026, 11, 1))
    invoice = billing.issue(system, billing.accept(system, billing.generate(system, account, date(2026, 11, 1))))
    assert (invoice.net, invoice.tax, invoice.gross) == (D("20.00"), D("3.80"), D("23.80"))  # 23.80 x 19 / 119
    assert postings(invoice) == [("1200", D("23.80"), D("0")), ("2200:19", D("0"), D("3.80")),
                                 ("8400", D("0"), D("10.00")), ("8410", D("0"), D("10.00"))]


def test_a_period_exports_as_csv_and_verify_says_it_balances(run):
    out = StringIO()
    call_command("journal", "export", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-12-01", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 8 and {row["document"] for row in rows} == {"INV/2026/000001", "INV/2026/000002"}
    assert [(r["account"], r["debit"], r["credit"]) for r in rows[:4]] == [
        ("1200", "41.65", ""), ("4000", "", "5.00"), ("8400", "", "30.00"), ("2200:19", "", "6.65")]
    out = StringIO()
    call_command("journal", "export", "--tenant", "acme", "--from", "2026-12-01", "--to", "2027-01-01", stdout=out)
    assert out.getvalue().count("\n") == 1  # the header only
    out = StringIO()
    call_command("journal", "verify", "--tenant", "acme", stdout=out)
    assert "every journal entry balances" in out.getvalue()
