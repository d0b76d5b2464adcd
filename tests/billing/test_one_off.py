"""One-off invoices (billing.services.one_off): ad-hoc charges with VAT per rate category, issued
like any invoice, posted to the ledger, and left alone by the bill runs."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import journal
from obol.billing import services as billing
from obol.core.errors import ValidationFailed
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued, lines
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_a_one_off_invoice_is_issued_and_left_alone_by_the_next_run(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))
    visit = billing.one_off(system, account, [("Technician visit", D("80.00"), "standard"),
                                              ("Cable", D("10.01"), "standard")], date(2026, 11, 12))
    assert lines(visit) == [("", "2026-11-12", "2026-11-13", D("80.00")), ("", "2026-11-12", "2026-11-13", D("10.01"))]
    assert (visit.net, visit.tax, visit.gross) == (D("90.01"), D("17.10"), D("107.11"))  # 90.01 x 19% = 17.1019
    visit = issued(system, visit, date(2026, 11, 12))
    assert visit.number == "INV/2026/000002"
    assert billing.generate(system, account, date(2026, 11, 12)) is None  # the run neither bills nor credits it
    assert journal.unbalanced() == []
    note = issued(system, billing.credit_note(system, visit), date(2026, 11, 13))
    assert note.gross == D("-107.11")
    assert billing.generate(system, account, date(2026, 11, 13)) is None  # and does not bill it again


def test_a_one_off_charge_needs_a_name_and_an_amount_in_the_currency(vat, system):
    account = make_account()
    with pytest.raises(ValidationFailed, match="has more decimals than EUR"):
        billing.one_off(system, account, [("Cable", D("10.005"), "standard")], date(2026, 11, 12))
    with pytest.raises(ValidationFailed, match="needs at least one charge"):
        billing.one_off(system, account, [], date(2026, 11, 12))


def test_a_one_off_draft_does_not_stand_for_the_days_invoice(vat, system):
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    visit = billing.one_off(system, account, [("Technician visit", D("80.00"), "standard")], date(2026, 11, 1))
    november = billing.generate(system, account, date(2026, 11, 1))
    assert november != visit and lines(november) == [("Basic", "2026-11-01", "2026-12-01", D("30.00"))]
    assert billing.generate(system, account, date(2026, 11, 1)) == november  # and the run again finds its own
