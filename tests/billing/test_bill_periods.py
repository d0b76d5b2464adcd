"""Bill periods per account: weekly, monthly, quarterly, yearly, with the cycle day, month and
weekday. An account is invoiced at the start of each of its bill periods; charges in advance are
billed up to its next bill date, charges in arrears for the periods that have ended. Amounts are
worked out by hand in each test."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import billrun
from obol.billing import services as billing
from obol.catalog.models import Charge
from obol.customers.models import BillingAccount
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def lines(invoice):
    return [(str(line.service_start), str(line.service_end), line.amount) for line in invoice.lines.order_by("position")]


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def test_a_quarterly_account_pays_a_monthly_charge_for_the_whole_quarter_in_advance(vat, system):
    plan = make_plan("basic", price="30.00")
    account = make_account(bill_period="quarter", bill_cycle_month=1)  # quarters from January, April, ...
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 16))
    first = billing.generate(system, account, date(2026, 11, 16))  # on activation: up to the next bill date, 1 Jan
    assert lines(first) == [("2026-11-16", "2026-12-01", D("15.00")),  # 15 of 30 days
                            ("2026-12-01", "2027-01-01", D("30.00"))]
    assert first.net == D("45.00")
    issued(system, first, date(2026, 11, 16))
    assert billing.generate(system, account, date(2026, 12, 1)) is None  # December was billed with November
    january = billing.generate(system, account, date(2027, 1, 1))
    assert lines(january) == [("2027-01-01", "2027-02-01", D("30.00")), ("2027-02-01", "2027-03-01", D("30.00")),
                              ("2027-03-01", "2027-04-01", D("30.00"))]
    assert (january.net, january.gross) == (D("90.00"), D("107.10"))  # 19% of 90.00 = 17.10
    issued(system, january, date(2027, 1, 1))
    assert billing.generate(system, account, date(2027, 2, 1)) is None


def test_a_quarterly_account_in_arrears_pays_the_ended_months_of_the_quarter(vat, system):
    plan = make_plan("basic", price="30.00")
    Charge.objects.filter(version__plan=plan).update(billing="arrears")
    account = make_account(bill_period="quarter", bill_cycle_month=1)
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 10))
    invoice = billing.generate(system, account, date(2027, 1, 1))
    assert lines(invoice) == [("2026-11-10", "2026-12-01", D("21.00")),  # 21 of 30 days
                              ("2026-12-01", "2027-01-01", D("30.00"))]


def test_a_weekly_account_is_billed_from_its_weekday(vat, system):
    plan = make_plan("weekly", price="7.00")
    Charge.objects.filter(version__plan=plan).update(period="week")
    account = make_account(bill_period="week", bill_weekday=0)  # weeks from Monday
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 11, 18))  # a Wednesday
    first = billing.generate(system, account, date(2026, 11, 18))
    assert lines(first) == [("2026-11-18", "2026-11-23", D("5.00"))]  # Wednesday to Sunday: 5 of 7 days
    issued(system, first, date(2026, 11, 18))
    second = billing.generate(system, account, date(2026, 11, 23))
    assert lines(second) == [("2026-11-23", "2026-11-30", D("7.00"))]


def test_a_yearly_charge_on_a_yearly_account_follows_the_cycle_month(vat, system):
    plan = make_plan("annual", price="365.00")
    Charge.objects.filter(version__plan=plan).update(period="year")
    account = make_account(bill_period="year", bill_cycle_month=4)  # years from 1 April
    subscriptions.subscribe(system, account, plan, start_date=date(2026, 12, 1))
    invoice = billing.generate(system, account, date(2026, 12, 1))
    # 1 December 2026 to 1 April 2027: 121 of the 365 days of the year from 1 April 2026
    assert lines(invoice) == [("2026-12-01", "2027-04-01", D("121.00"))]


def test_bill_runs_take_the_accounts_whose_bill_period_starts_on_the_day(in_tenant, system):
    def make(number, **fields):
        make_account(number, **fields)

    make("M-1")  # monthly from the 1st
    make("M-31", bill_cycle_day=31)  # monthly, last day of shorter months
    make("Q-JAN", bill_period="quarter", bill_cycle_month=1)
    make("Q-FEB-31", bill_period="quarter", bill_cycle_month=2, bill_cycle_day=31)  # Feb, May, Aug, Nov
    make("Y-APR", bill_period="year", bill_cycle_month=4)
    make("W-MON", bill_period="week", bill_weekday=0)
    make("W-TUE", bill_period="week", bill_weekday=1)

    def due(day):
        return sorted(BillingAccount.objects.filter(billrun.due_on(day)).values_list("number", flat=True))

    assert due(date(2027, 1, 1)) == ["M-1", "Q-JAN"]  # a Friday
    assert due(date(2027, 2, 1)) == ["M-1", "W-MON"]  # a Monday; not a quarter month for Q-JAN
    assert due(date(2027, 2, 28)) == ["M-31", "Q-FEB-31"]  # a Sunday, February's last day
    assert due(date(2027, 4, 1)) == ["M-1", "Q-JAN", "Y-APR"]  # a Thursday
    assert due(date(2027, 4, 30)) == ["M-31"]  # a Friday; April is not one of Q-FEB-31's months
    assert due(date(2027, 5, 31)) == ["M-31", "Q-FEB-31", "W-MON"]  # a Monday


def test_a_run_of_one_cycle_day_takes_the_quarterly_accounts_only_in_their_months(in_tenant, system):
    make_account("M-15", bill_cycle_day=15)
    make_account("Q-15", bill_cycle_day=15, bill_period="quarter", bill_cycle_month=1)
    make_account("W", bill_cycle_day=15, bill_period="week")

    def taken(day):
        return sorted(billrun.accounts_of(billrun.start(system, day, cycle_day=15)).values_list("number", flat=True))

    assert taken(date(2027, 1, 20)) == ["M-15", "Q-15"]  # January's cycle, billed late
    assert taken(date(2027, 2, 20)) == ["M-15"]  # February is not one of Q-15's months; weeks have no cycle day
