"""Bill runs (billing/billrun.py, `obol billrun`): which accounts a run takes, a run stopped in the
middle and run again, errors kept per account, the steps on the run's invoices. Amounts by hand."""
import json
from datetime import date
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from obol.billing import billrun, services
from obol.billing.models import BillRunError, Invoice, TaxRate
from obol.core.tenancy import tenant_context
from obol.customers.models import BillingAccount, Contact, Customer
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def populate(tenant, system, cycle_days=(1, 1, 15, 30, 31, 1, 1, 1)):
    """Accounts A-0.. with the given cycle days, each on a 30.00 plan (in advance, prorated) from 1 Nov."""
    with tenant_context(tenant):
        TaxRate.objects.create(tenant=tenant, country=tenant.country, category="standard", rate=D("19"),
                               valid_from=date(2020, 1, 1))
        plan = make_plan("basic", price="30.00")
        for n, day in enumerate(cycle_days):
            account = make_account(f"A-{n}", bill_cycle_day=day)
            subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 1))


def gross_by_account(tenant):
    with tenant_context(tenant):
        return {i.account.number: i.gross for i in Invoice.objects.exclude(state="cancelled").select_related("account")}


def test_a_run_takes_the_accounts_due_on_its_day(tenant, system):
    populate(tenant, system)
    with tenant_context(tenant):
        numbers = lambda run: sorted(billrun.accounts_of(run).values_list("number", flat=True))  # noqa: E731
        assert numbers(billrun.start(system, date(2026, 12, 1))) == ["A-0", "A-1", "A-5", "A-6", "A-7"]
        # 30 November is the last day of the month: cycle days 30 and 31 start their period then
        assert numbers(billrun.start(system, date(2026, 11, 30))) == ["A-3", "A-4"]
        assert numbers(billrun.start(system, date(2026, 12, 1), cycle_day=15)) == ["A-2"]
        assert numbers(billrun.start(system, date(2026, 12, 1), accounts=["A-3", "A-2"])) == ["A-2", "A-3"]
        assert len(numbers(billrun.start(system, date(2026, 12, 1), every_account=True))) == 8
        BillingAccount.objects.filter(number__in=["A-1", "A-5"]).update(segment="business")
        assert numbers(billrun.start(system, date(2026, 12, 1), segment="business")) == ["A-1", "A-5"]
        assert numbers(billrun.start(system, date(2026, 12, 1), every_account=True, segment="business")) == ["A-1", "A-5"]
        with pytest.raises(Exception, match="no account A-99"):
            billrun.start(system, date(2026, 12, 1), accounts=["A-99"])


def test_a_run_stopped_in_the_middle_and_run_again_gives_one_invoice_per_account(tenant, other_tenant, system,
                                                                                  monkeypatch):
    populate(tenant, system)
    populate(other_tenant, system)
    with tenant_context(other_tenant):  # the twin, uninterrupted
        billrun.generate(system, billrun.start(system, date(2026, 12, 1), every_account=True))
    calls = []
    write = services._write

    def killed_in_the_second_chunk(drafts):
        calls.append(1)
        write(drafts)  # the invoices are written, then the process dies before COMMIT
        if len(calls) == 2:
            raise KeyboardInterrupt("kill -9")

    monkeypatch.setattr(billrun, "CHUNK", 3)
    with tenant_context(tenant):
        run = billrun.start(system, date(2026, 12, 1), every_account=True)
        monkeypatch.setattr(services, "_write", killed_in_the_second_chunk)
        with pytest.raises(KeyboardInterrupt):
            billrun.generate(system, run)
        assert Invoice.objects.count() == 3  # the first chunk's
        monkeypatch.setattr(services, "_write", write)
        summary = billrun.generate(system, run)
        assert (summary.taken, summary.skipped, summary.done) == (8, 3, 5)
        again = billrun.generate(system, run)  # and once more: nothing new
        assert (again.skipped, again.done) == (8, 0)
        run.refresh_from_db()
        assert (run.state, run.invoices, run.errors) == ("generated", 8, 0)
    assert gross_by_account(tenant) == gross_by_account(other_tenant)
    # on 1 December, in advance: November (30.00) and December (30.00), 19% VAT: 71.40 for cycle day 1;
    # cycle day 15: 1-14 Nov of the period 15 Oct-14 Nov (14/31 x 30 = 13.55), 15 Nov-14 Dec (30.00)
    assert gross_by_account(tenant)["A-0"] == D("71.40")
    assert gross_by_account(tenant)["A-2"] == D("51.82")  # 43.55 + 8.27


def test_an_accounts_error_is_kept_and_the_others_are_invoiced(tenant, system):
    populate(tenant, system, cycle_days=(1, 1, 1))
    with tenant_context(tenant):
        Customer.objects.filter(number="C-A-1").update(country="AT")  # no Austrian VAT rate yet
        run = billrun.start(system, date(2026, 12, 1))
        summary = billrun.generate(system, run)
        assert (summary.done, summary.errors) == (2, 1)
        failure = BillRunError.objects.get(run=run)
        assert (failure.account.number, failure.code, failure.field) == ("A-1", "invalid", "tax_category")
        assert "no VAT rate for 'standard' in AT on 2026-12-01" in failure.message
        run.refresh_from_db()
        assert (run.state, run.errors) == ("open", 1)
        TaxRate.objects.create(tenant=tenant, country="AT", category="standard", rate=D("20"),
                               valid_from=date(2020, 1, 1))
        summary = billrun.generate(system, run)
        assert (summary.done, summary.skipped, summary.errors) == (1, 2, 0)
        assert not BillRunError.objects.exists()
        assert Invoice.objects.get(account__number="A-1").gross == D("72.00")  # 60.00 + 20%


def test_the_steps_run_on_the_whole_run_or_a_selection(tenant, system):
    populate(tenant, system, cycle_days=(1, 1, 1))
    with tenant_context(tenant):
        run = billrun.start(system, date(2026, 12, 1))
        billrun.generate(system, run)
        first = Invoice.objects.get(account__number="A-0")
        assert billrun.apply(system, run, "cancel", numbers=[str(first.pk)]).done == 1
        accepted = billrun.apply(system, run, "accept")
        assert (accepted.taken, accepted.done, accepted.gross) == (2, 2, {"EUR": "142.80"})
        issued = billrun.apply(system, run, "issue", on=date(2026, 12, 1))
        assert sorted(Invoice.objects.filter(state="issued").values_list("number", flat=True)) == [
            "INV/2026/000001", "INV/2026/000002"]
        assert issued.done == 2 and billrun.apply(system, run, "issue").taken == 0
        # the cancelled account is invoiced by the next generate of the run
        assert billrun.generate(system, run).done == 1


def test_the_command_starts_a_run_and_prints_json(tenant, system):
    populate(tenant, system, cycle_days=(1, 15))
    out = StringIO()
    call_command("billrun", "start", "--tenant", "acme", "--date", "2026-12-01", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert (summary["taken"], summary["done"], summary["gross"]) == (1, 1, {"EUR": "71.40"})
    out = StringIO()
    call_command("billrun", "issue", str(summary["run"]), "--tenant", "acme", "--json", stdout=out)
    assert json.loads(out.getvalue())["done"] == 0  # drafts must be accepted first
    call_command("billrun", "accept", str(summary["run"]), "--tenant", "acme", stdout=StringIO())
    out = StringIO()
    call_command("billrun", "issue", str(summary["run"]), "--tenant", "acme", "--on", "2026-12-01", stdout=out)
    assert "1 done" in out.getvalue()
    out = StringIO()
    call_command("billrun", "show", str(summary["run"]), "--tenant", "acme", stdout=out)
    assert "1 accounts, 1 invoices, 0 with nothing due, 0 errors" in out.getvalue()


def test_the_send_step_mails_each_issued_invoice_and_keeps_who_could_not_be_sent_to(
        tenant, system, mail_to_smtp, django_capture_on_commit_callbacks):
    populate(tenant, system, cycle_days=(1, 1))
    with tenant_context(tenant):
        account = BillingAccount.objects.get(number="A-0")
        account.billing_contact = Contact.objects.create(tenant=tenant, customer=account.customer, name="Ada",
                                                         email="ada@example.test")
        account.save()
        run = billrun.start(system, date(2026, 12, 1))
        billrun.generate(system, run)
        billrun.apply(system, run, "accept")
        billrun.apply(system, run, "issue", on=date(2026, 12, 1))
        with django_capture_on_commit_callbacks(execute=True):
            sent = billrun.apply(system, run, "send")
        assert (sent.taken, sent.done, sent.errors) == (2, 1, 1)
        [failure] = BillRunError.objects.filter(run=run, step="send")
        assert (failure.account.number, failure.field) == ("A-1", "billing_contact")
        assert sorted(Invoice.objects.values_list("account__number", "state")) == [("A-0", "sent"), ("A-1", "issued")]
        assert billrun.apply(system, run, "send").taken == 1  # only the one not sent yet
    [mail] = mail_to_smtp.messages
    assert mail["to"] == ["ada@example.test"]
    assert [part.get_filename() for part in mail["message"].iter_attachments()] == ["INV-2026-000001.pdf"]
