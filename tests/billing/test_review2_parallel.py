"""Review 2 of billrun.generate_parallel (18fcace), PostgreSQL. Each forked worker ends with
`generate`'s own `_recount`, which marks the run GENERATED (finished_at set) when no errors are
stored. When a worker is killed, the survivors' recounts close the run (state GENERATED,
finished_at set) and count the dead worker's accounts as "nothing due"; generate_parallel raises
without putting that right. They guard the fix: a chunk's process no longer closes the run;
generate_parallel counts it after every worker, and closes it only when none failed."""
import os
from datetime import date

import pytest
from django.db import connection, transaction

from obol.billing import billrun
from obol.billing.models import BillRun
from obol.core.errors import ObolError
from obol.core.tenancy import tenant_context
from tests.billing.test_billrun import populate

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel workers need PostgreSQL")]


def test_the_survivors_of_a_killed_worker_do_not_close_the_run(tenant, system, monkeypatch):
    populate(tenant, system, cycle_days=(1,) * 9)
    real = billrun.generate

    def dies_as_worker_one(actor, run, *, chunk=(0, 1), progress=None):
        if chunk == (1, 3):
            os._exit(9)
        return real(actor, run, chunk=chunk, progress=progress)

    monkeypatch.setattr(billrun, "generate", dies_as_worker_one)
    with tenant_context(tenant):
        run = billrun.start(system, date(2026, 12, 1))
        with pytest.raises(ObolError, match="worker 1 ended with exit code 9"):
            billrun.generate_parallel(system, run, 3)
        run.refresh_from_db()
        # three accounts have no invoice yet: the run is not finished (it also counts them as nothing due)
        assert (run.invoices, run.state, run.finished_at) == (6, BillRun.State.OPEN, None)


def test_called_inside_a_transaction_it_refuses_before_closing_the_callers_connection(tenant, system):
    """generate_parallel closes the connections (connections.close_all) before it forks: inside an
    atomic block that silently ends the caller's transaction (Django marks it for rollback, the run
    started in it is lost), the forked workers inherit the closed connection and fail with
    "the connection is closed", and the error says "the other workers' invoices are made". It
    should refuse up front (the workers could not see an uncommitted run anyway)."""
    populate(tenant, system, cycle_days=(1,) * 4)
    with tenant_context(tenant), transaction.atomic():
        run = billrun.start(system, date(2026, 12, 1))
        with pytest.raises(ObolError) as raised:
            billrun.generate_parallel(system, run, 2)
        assert "connection is closed" not in raised.value.message
        assert not connection.needs_rollback  # the caller's transaction is still usable
        assert BillRun.objects.filter(pk=run.pk).exists()
