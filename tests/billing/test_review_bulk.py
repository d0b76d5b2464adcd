"""Review of core/bulk.py's writers (14bfbd3, ef9bdbc: insert_returning / insert_models /
insert_values / update_columns and their converters) against Django's own writes: the stored column
values must be the very same on SQLite (text forms of decimals, dates, datetimes, 0/1 booleans, NULL)
and on PostgreSQL (COPY with ids drawn from the sequence).

GUARD tests: they pass; they were written to check the converters and keep them honest.
"""
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from obol.billing.models import Invoice, InvoiceLine
from obol.core.bulk import insert_models, insert_returning, insert_values, update_columns
from tests.factories import make_account

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
# values whose text or type forms differ: trailing zeros, a negative zero, an exponent, 18 decimals,
# 20 integer digits; an aware datetime in another zone with and without microseconds
AMOUNTS = {"net": D("10.50"), "tax": D("-0.00"), "gross": D("1E+1"), "open_amount": D("0.000000000000000001")}
CREATED = datetime(2026, 11, 30, 23, 30, 0, 123456, tzinfo=BERLIN)  # 22:30:00.123456 UTC
ISSUED = datetime(2026, 12, 1, 0, 0, tzinfo=BERLIN)  # 23:00:00 UTC the day before, no microseconds


def raw(model, pk):
    """The row as the database driver returns it, without Django's converters."""
    table = model._meta.db_table
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT {", ".join(columns)} FROM "{table}" WHERE id = %s', [pk])
        return dict(zip(columns, cursor.fetchone(), strict=True))


def invoice(account, **more):
    return Invoice(tenant_id=account.tenant_id, account=account, invoice_date=date(2026, 12, 1), currency="EUR",
                   prices_include_tax=True, created_at=CREATED, **AMOUNTS, **more)


def test_insert_models_stores_what_django_stores(in_tenant):
    account = make_account()
    by_django = invoice(account)
    by_django.save()
    by_bulk = [invoice(account), invoice(account, number="X-1", issue_date=date(2026, 12, 2), issued_at=ISSUED)]
    insert_models(by_bulk)
    assert by_bulk[0].pk > by_django.pk and by_bulk[1].pk == by_bulk[0].pk + 1  # ids in the rows' order
    assert raw(Invoice, by_bulk[0].pk) == raw(Invoice, by_django.pk)
    again = Invoice.objects.get(pk=by_bulk[1].pk)
    assert (again.number, again.issue_date, again.issued_at, again.prices_include_tax, again.tax, again.gross) == (
        "X-1", date(2026, 12, 2), ISSUED, True, D(0), D(10))
    assert Invoice.objects.filter(gross=D("10"), tax=0, open_amount__gt=0).count() == 3  # lookups see them


def test_insert_values_and_insert_returning_store_what_django_stores(in_tenant):
    account = make_account()
    parent = invoice(account)
    parent.save()
    values = dict(tenant_id=account.tenant_id, invoice_id=parent.pk, position=1, subscription_id=None,
                  charge_code="fee", kind="recurring", name="Fee – «x»\t\\", label="", amount=D("-12.3400"),
                  service_start=date(2026, 12, 1), service_end=date(2027, 1, 1), period_start=None, period_end=None,
                  per_period=D("31"), quantity=None, included=D("0E-6"), unit="", tax_category="standard",
                  revenue_account="", tax_code="S", tax_rate=D("19.00"), reverses_id=None, credits_id=None)
    by_django = InvoiceLine.objects.create(**values)
    columns = list(values)
    insert_values(InvoiceLine, columns, [list(values.values())])
    [returned] = insert_returning(InvoiceLine, columns, [list(values.values())])
    bulk_ids = list(InvoiceLine.objects.exclude(pk=by_django.pk).values_list("pk", flat=True))
    assert returned in bulk_ids and len(bulk_ids) == 2
    for pk in bulk_ids:
        assert raw(InvoiceLine, pk) == raw(InvoiceLine, by_django.pk)


def test_update_columns_stores_what_save_stores(in_tenant):
    account = make_account()
    first, second = invoice(account), invoice(account)
    first.save()
    second.save()
    fields = ["state", "number", "issue_date", "due_date", "open_amount", "issued_at", "template_id"]
    changes = {"state": "issued", "number": "INV/2026/000001", "issue_date": date(2026, 12, 1),
               "due_date": date(2026, 12, 15), "open_amount": D("11.900"), "issued_at": ISSUED, "template_id": None}
    for name, value in changes.items():
        setattr(first, name, value)
    first.save(update_fields=fields)
    changes["number"] = "INV/2026/000002"  # numbers are unique
    update_columns(Invoice, fields, {second.pk: [changes[name] for name in fields]})
    assert raw(Invoice, second.pk) == raw(Invoice, first.pk) | {"number": "INV/2026/000002"}
