"""Credit notes (billing.services.credit_note): a whole invoice reversed is billed again by the
next run; a partial credit is an adjustment that stays; nothing is credited twice; issued credit
notes take their numbers from their own series and lower the invoice's open amount."""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.billing.models import Invoice
from obol.core.errors import IllegalTransition, ValidationFailed
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued, lines, vat  # noqa: F401 - fixtures
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def november(vat, system):  # noqa: F811
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    subscriptions.subscribe(system, account, make_plan("extra", price="5.00"), start_date=date(2026, 11, 1))
    return issued(system, billing.generate(system, account, date(2026, 11, 1)), date(2026, 11, 1))


def test_a_whole_credit_note_reverses_the_invoice_and_the_next_run_bills_again(november, system):
    assert november.gross == D("41.65")  # 35.00 + 19%
    note = issued(system, billing.credit_note(system, november, reason="wrong address"), date(2026, 11, 5))
    assert (note.number, note.kind, note.credited, note.gross) == ("CN/2026/000001", "credit_note", november,
                                                                  D("-41.65"))
    assert [line.amount for line in note.lines.order_by("position")] == [D("-30.00"), D("-5.00")]
    november.refresh_from_db()
    assert (november.open_amount, note.open_amount) == (D("0"), D("0"))
    again = billing.generate(system, november.account, date(2026, 11, 5))
    assert lines(again) == [("Basic", "2026-11-01", "2026-12-01", D("30.00")),
                            ("Extra", "2026-11-01", "2026-12-01", D("5.00"))]


def test_a_partial_credit_note_stays_and_cannot_exceed_what_is_left(november, system):
    basic = november.lines.get(name="Monthly fee", label="Basic")
    note = billing.credit_note(system, november, {basic.pk: D("10.00")}, reason="outage")
    assert (note.net, note.tax, note.gross) == (D("-10.00"), D("-1.90"), D("-11.90"))
    issued(system, note, date(2026, 11, 5))
    november.refresh_from_db()
    assert november.open_amount == D("29.75")  # 41.65 - 11.90
    assert billing.generate(system, november.account, date(2026, 11, 5)) is None  # an adjustment: nothing re-billed
    with pytest.raises(ValidationFailed, match=r"line 1 \(Monthly fee\) can be credited up to 20.00 EUR, not 25.00 EUR"):
        billing.credit_note(system, november, {basic.pk: D("25.00")})
    billing.credit_note(system, november, {basic.pk: D("20.00")})  # what is left


def test_only_an_issued_invoice_is_credited(vat, system):  # noqa: F811
    account = make_account()
    subscriptions.subscribe(system, account, make_plan("basic", price="30.00"), start_date=date(2026, 11, 1))
    draft = billing.generate(system, account, date(2026, 11, 1))
    with pytest.raises(IllegalTransition, match="only an issued invoice is credited"):
        billing.credit_note(system, draft)
    assert Invoice.objects.filter(kind="credit_note").count() == 0
