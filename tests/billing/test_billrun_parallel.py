"""`obol billrun start --workers 3` on PostgreSQL: three processes share the run's accounts; every
account gets exactly one invoice, the same as one process gives."""
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from obol.billing.models import Invoice
from obol.core.tenancy import tenant_context
from tests.billing.test_billrun import gross_by_account, populate
from tests.support.databases import database_url

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel workers need PostgreSQL")]


def test_three_workers_invoice_every_account_once(tenant, other_tenant, system, monkeypatch):
    populate(tenant, system, cycle_days=(1,) * 10)
    populate(other_tenant, system, cycle_days=(1,) * 10)
    monkeypatch.setenv("OBOL_DATABASE_URL", database_url())
    out = StringIO()
    call_command("billrun", "start", "--tenant", "acme", "--date", "2026-12-01", "--workers", "3", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (summary["workers"], summary["taken"], summary["done"], summary["errors"]) == (3, 10, 10, 0)
    call_command("billrun", "start", "--tenant", "globex", "--date", "2026-12-01", stdout=StringIO())
    with tenant_context(tenant):
        assert Invoice.objects.count() == 10
    assert gross_by_account(tenant) == gross_by_account(other_tenant)
