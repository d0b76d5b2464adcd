"""Concurrency tests (PostgreSQL): run calls in threads released at the same instant."""
from __future__ import annotations

import threading
from contextlib import ExitStack

from django.db import connections

from obol.core.clock import frozen
from obol.core.errors import ObolError
from obol.core.tenancy import tenant_context


def race(tenant, calls, *, at=None) -> list:
    """Run `calls` each in its own thread and database connection, in the tenant's scope (and at the
    frozen time `at`), released together. Returns what each returned ("ok" for None) or the code of
    the Obol error it raised, in the order they finished. Anything else (a deadlock, a lost update)
    fails the test."""
    barrier = threading.Barrier(len(calls))
    results, errors = [], []

    def run(call):
        try:
            with ExitStack() as scope:
                scope.enter_context(tenant_context(tenant))
                if at is not None:
                    scope.enter_context(frozen(at))
                barrier.wait()
                try:
                    result = call()
                    results.append("ok" if result is None else result)
                except ObolError as error:
                    results.append(error.code)
        except Exception as exc:  # noqa: BLE001 - a deadlock or a lost update must fail the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results
