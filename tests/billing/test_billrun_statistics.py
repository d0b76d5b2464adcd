"""A bill run of more than one chunk first brings the planner's statistics of the tables it reads up
to date (PostgreSQL's pg_class, SQLite's sqlite_stat1): without them both planners read every rated
record and invoice line of the tenant for each chunk (docs/billing-performance.md)."""
from datetime import date

import pytest
from django.db import connection

from obol.billing import billrun
from obol.billing.models import InvoiceLine
from obol.core.tenancy import tenant_context
from obol.subscriptions.models import Subscription
from tests.billing.test_billrun import populate

pytestmark = pytest.mark.django_db


def rows_known(table: str) -> int | None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            return int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [table])
        found = cursor.fetchone()
        return int(found[0].split()[0]) if found else None


def rows_stored(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        return cursor.fetchone()[0]


def test_generate_and_issue_of_more_than_a_chunk_refresh_the_statistics(tenant, system, monkeypatch):
    populate(tenant, system, cycle_days=(1,) * 5)
    monkeypatch.setattr(billrun, "CHUNK", 2)
    subscriptions, lines = Subscription._meta.db_table, InvoiceLine._meta.db_table
    assert rows_known(subscriptions) != rows_stored(subscriptions) == 5
    with tenant_context(tenant):
        run = billrun.start(system, date(2026, 12, 1))
        assert billrun.generate(system, run).done == 5
        assert rows_known(subscriptions) == 5  # read at the start of generate
        # and the invoice tables again as generate doubled them (after 2 and 5 invoices)
        assert rows_known(lines) == rows_stored(lines) == 10  # November and December each
        asked = []
        real = billrun.refresh_statistics
        monkeypatch.setattr(billrun, "refresh_statistics", lambda *models: asked.append(models) or real(*models))
        billrun.apply(system, run, "accept")
        assert asked == []  # accept reads no lines
        assert billrun.apply(system, run, "issue", on=date(2026, 12, 1)).done == 5
        assert [[m._meta.db_table for m in models] for models in asked] == [
            ["billing_invoice", "billing_invoiceline", "billing_invoicetax"]]
