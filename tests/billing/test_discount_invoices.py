"""A promotion's discount on real invoices: a promo code applied to a subscription, the discount
lines and their VAT, and a cancellation back-dated into a billed month repaired. Amounts by hand."""
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from obol.balances import promotions
from obol.billing import services as billing
from obol.core.clock import frozen
from obol.subscriptions import services as subscriptions
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def issued(system, invoice, on):
    return billing.issue(system, billing.accept(system, invoice), on)


def save20(system):
    """SAVE20, "Spring offer": 20% off the recurring charges for two months, as a promo code."""
    promotions.create_promotion(system, code="SAVE20", name="Spring offer", kind="discount", trigger="code",
                                discount_type="percent", discount_percent=D(20), discount_periods=2,
                                charge_kinds=["recurring"], valid_from=datetime(2025, 1, 1, tzinfo=UTC))


def test_a_promo_code_discounts_the_invoices_of_its_months(vat, system):
    plan = make_plan("basic", price="30.00")
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 11, 1))
    save20(system)
    with frozen(date(2026, 11, 1)):
        application = promotions.apply_code(system, subscription, "SAVE20")  # 1 November to 1 January
    november = issued(system, billing.generate(system, subscription.account, date(2026, 11, 1)), date(2026, 11, 1))
    assert [(line.kind, line.name, line.amount) for line in november.lines.order_by("position")] == [
        ("recurring", "Monthly fee", D("30.00")), ("discount", "Spring offer (SAVE20)", D("-6.00"))]
    assert (november.net, november.tax, november.gross) == (D("24.00"), D("4.56"), D("28.56"))  # 19% of 24.00

    promotions.cancel_application(system, application, reason="abuse", effective_date=date(2026, 11, 16))
    december = billing.generate(system, subscription.account, date(2026, 12, 1))
    # the discount of 16-30 November is taken back: 20% of 30.00 x 15/30 = 3.00; December is not discounted
    assert [(line.kind, line.amount) for line in december.lines.order_by("position")] == [
        ("recurring", D("30.00")), ("discount", D("3.00"))]
    assert december.net == D("33.00")


def test_a_partial_credit_note_of_a_discounted_invoice_takes_at_most_what_it_charged(vat, system, in_tenant):
    from obol.billing.models import BillingSettings
    from obol.core.errors import ValidationFailed

    BillingSettings.objects.create(tenant=in_tenant, prices_include_tax=True)  # lines state gross amounts
    plan = make_plan("basic", price="30.00")
    subscription = subscriptions.subscribe(system, make_account(), plan, start_date=date(2026, 11, 1))
    save20(system)
    with frozen(date(2026, 11, 1)):
        promotions.apply_code(system, subscription, "SAVE20")
    november = issued(system, billing.generate(system, subscription.account, date(2026, 11, 1)), date(2026, 11, 1))
    assert november.gross == D("24.00")  # 30.00 less 6.00, VAT included
    fee = november.lines.get(kind="recurring")
    with pytest.raises(ValidationFailed, match="24.00 EUR left to credit"):
        billing.credit_note(system, november, {fee.pk: D("24.01")})
    note = billing.credit_note(system, november, {fee.pk: D("24.00")})
    assert (note.gross, note.tax) == (D("-24.00"), D("-3.83"))  # all the VAT charged: 24.00 x 19/119
    assert november.tax == D("3.83")
