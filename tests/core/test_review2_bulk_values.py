"""Review 2 of core/bulk.py's column-wise converters: `_distinct` keyed its cache by Python
equality, so a value of another type that compares equal to an earlier one (1.5 == Decimal("1.5"),
True == Decimal(1), 15 == Decimal("15.00"), the two 2:30s of a fall-back night in one zone) took the
earlier one's conversion instead of its own: a float or a bool was no longer refused, and on
PostgreSQL a Decimal's scale depended on what came before it in the column. Before the change each
value went through `get_db_prep_save` (f3316e4). They guard the fix: `_distinct` keys its cache by
type and value (and a moment's fold)."""
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection

from obol.billing.models import Invoice, InvoiceTax
from obol.core.bulk import insert_values, update_columns
from obol.core.errors import ValidationFailed
from tests.factories import make_account

pytestmark = pytest.mark.django_db

COLUMNS = ["tenant_id", "invoice_id", "code", "rate", "taxable", "tax"]


def parent(account=None):
    account = account or make_account()
    invoice = Invoice(tenant_id=account.tenant_id, account=account, invoice_date=date(2026, 12, 1), currency="EUR")
    invoice.save()
    return invoice


@pytest.mark.parametrize("odd", [1.5, True], ids=["float", "bool"])
def test_a_float_or_bool_amount_is_refused_even_after_an_equal_decimal(in_tenant, odd):
    invoice = parent()
    equal = D("1.5") if odd == 1.5 else D("1")
    alone = [(invoice.tenant_id, invoice.pk, "S", odd, D("10"), D("1"))]
    with pytest.raises(ValidationFailed):  # alone, refused as the field refuses it (to_decimal)
        insert_values(InvoiceTax, COLUMNS, alone)
    after = [(invoice.tenant_id, invoice.pk, "S", equal, D("10"), D("1")), *alone]
    with pytest.raises(ValidationFailed):  # after an equal Decimal: stored as that Decimal
        insert_values(InvoiceTax, COLUMNS, after)


def raw_rates(invoice):
    with connection.cursor() as cursor:
        cursor.execute('SELECT rate FROM "billing_invoicetax" WHERE invoice_id = %s ORDER BY id', [invoice.pk])
        return [str(row[0]) for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="numeric keeps the scale on PostgreSQL only")
def test_a_decimal_keeps_its_scale_whatever_came_before_it_in_the_column(in_tenant):
    invoice = parent()
    insert_values(InvoiceTax, COLUMNS, [(invoice.tenant_id, invoice.pk, "S", 19, D("10"), D("1.9")),
                                        (invoice.tenant_id, invoice.pk, "S", D("19.00"), D("10"), D("1.9"))])
    InvoiceTax.objects.create(tenant_id=invoice.tenant_id, invoice=invoice, code="S", rate=D("19.00"),
                              taxable=D("10"), tax=D("1.9"))  # what Django stores
    assert raw_rates(invoice) == ["19", "19.00", "19.00"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="numeric keeps the scale on PostgreSQL only")
def test_update_columns_keeps_each_decimals_scale(in_tenant):
    first = parent()
    second = parent(first.account)
    update_columns(Invoice, ["open_amount"], {first.pk: (0,), second.pk: (D("0.00"),)})
    with connection.cursor() as cursor:
        cursor.execute('SELECT open_amount FROM "billing_invoice" WHERE id = %s', [second.pk])
        assert str(cursor.fetchone()[0]) == "0.00"


@pytest.mark.skipif(connection.vendor != "sqlite",
                    reason="SQLite stores moments as UTC text, converted per distinct value")
def test_the_two_moments_of_a_fall_back_hour_stay_two_moments(in_tenant):
    """2:30 in Berlin on 25 October 2026 happens twice (fold 0: 00:30 UTC, fold 1: 01:30 UTC). With
    the same tzinfo Python compares them as equal and hashes them alike, so `_distinct` converts
    only the first and stores the second an hour early."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from obol.core.models import AuditEvent

    berlin = ZoneInfo("Europe/Berlin")
    first, second = (datetime(2026, 10, 25, 2, 30, fold=fold, tzinfo=berlin) for fold in (0, 1))
    assert first == second and hash(first) == hash(second) and first.timestamp() != second.timestamp()
    row = lambda at, n: (in_tenant.pk, at, "process", "", "test", "x", "t", str(n), "", {}, "")  # noqa: E731
    insert_values(AuditEvent, ["tenant_id", "at", "actor_kind", "actor_id", "actor_label", "action", "object_type",
                               "object_id", "object_repr", "changes", "reason"], [row(first, 1), row(second, 2)])
    with connection.cursor() as cursor:
        cursor.execute('SELECT CAST("at" AS TEXT) FROM "core_auditevent" ORDER BY "object_id"')
        assert [r[0] for r in cursor.fetchall()] == ["2026-10-25 00:30:00", "2026-10-25 01:30:00"]
