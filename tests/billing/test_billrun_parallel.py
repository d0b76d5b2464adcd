"""`obol billrun start --workers 3` on PostgreSQL: three forked processes share the run's accounts;
every account gets exactly one invoice, the same as one process gives. A worker that dies leaves
its accounts to the next `generate`, which finishes the run."""
import json
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from obol.billing import billrun
from obol.billing.models import Invoice
from obol.core.tenancy import tenant_context
from tests.billing.test_billrun import gross_by_account, populate

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel workers need PostgreSQL")]


def test_three_workers_invoice_every_account_once(tenant, other_tenant, system):
    populate(tenant, system, cycle_days=(1,) * 10)
    populate(other_tenant, system, cycle_days=(1,) * 10)
    out = StringIO()
    call_command("billrun", "start", "--tenant", "acme", "--date", "2026-12-01", "--workers", "3", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (summary["workers"], summary["taken"], summary["done"], summary["errors"]) == (3, 10, 10, 0)
    # each: November (from the 1st, not billed yet) and December in advance, 2 x 30.00 + 19% VAT = 71.40
    assert summary["gross"] == {"EUR": "714.00"}
    call_command("billrun", "start", "--tenant", "globex", "--date", "2026-12-01", stdout=StringIO())
    with tenant_context(tenant):
        assert Invoice.objects.count() == 10
    assert gross_by_account(tenant) == gross_by_account(other_tenant)


def test_a_worker_killed_leaves_its_accounts_to_the_next_generate(tenant, system, monkeypatch):
    populate(tenant, system, cycle_days=(1,) * 9)
    real = billrun.generate

    def dies_as_worker_one(actor, run, *, chunk=(0, 1), progress=None):
        if chunk == (1, 3):
            os._exit(9)  # as kill -9 would: no report, no clean-up
        return real(actor, run, chunk=chunk, progress=progress)

    monkeypatch.setattr(billrun, "generate", dies_as_worker_one)  # the forked workers inherit it
    with pytest.raises(CommandError, match="worker 1 ended with exit code 9"):
        call_command("billrun", "start", "--tenant", "acme", "--date", "2026-12-01", "--workers", "3",
                     stdout=StringIO(), stderr=StringIO())
    with tenant_context(tenant):
        assert Invoice.objects.count() == 6  # workers 0 and 2: three accounts each
        run = billrun.BillRun.objects.get()
    monkeypatch.setattr(billrun, "generate", real)
    out = StringIO()
    call_command("billrun", "generate", str(run.pk), "--tenant", "acme", "--workers", "3", "--json", stdout=out)
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (summary["done"], summary["skipped"]) == (3, 6)
    with tenant_context(tenant):
        assert sorted(Invoice.objects.values_list("account__number", flat=True)) == [f"A-{n}" for n in range(9)]
