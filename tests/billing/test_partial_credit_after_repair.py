"""A partial credit note counts the repairs later invoices made to the line: it cannot credit
more than is left of it.

December 31.00; terminated from 11 Dec -> the January invoice credits 21.00 (11-31 Dec). Only
10.00 of the December line is left, yet a 31.00 goodwill credit on it is accepted:
31.00 - 21.00 - 31.00 = -21.00 in total for a subscription that used 10 days.
"""
from datetime import date
from decimal import Decimal as D

import pytest

from obol.billing import services as billing
from obol.core.errors import ValidationFailed
from obol.subscriptions import services as subscriptions
from tests.billing.test_invoices import issued
from tests.factories import make_account, make_plan

pytestmark = pytest.mark.django_db


def test_partial_credit_ignores_repairs_already_made(vat, system):
    account = make_account()
    sub = subscriptions.subscribe(system, account, make_plan("basic", price="31.00"), start_date=date(2026, 12, 1))
    december = issued(system, billing.generate(system, account, date(2026, 12, 1)), date(2026, 12, 1))
    subscriptions.transition(system, sub, "terminate", date(2026, 12, 11))
    issued(system, billing.generate(system, account, date(2027, 1, 1)), date(2027, 1, 1))
    line = december.lines.get()
    with pytest.raises(ValidationFailed, match="can be credited up to 10.00"):
        billing.credit_note(system, december, {line.pk: D("31.00")})
