"""Two identical requests with one Idempotency-Key at the same moment: one does the work, the
other waits and gets the same answer. Needs real concurrent connections: PostgreSQL."""
import threading

import pytest
from django.db import connection, connections

from obol.core.tenancy import all_tenants
from obol.customers.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_concurrent_repeats_get_the_first_answer(api):
    barrier = threading.Barrier(4)
    answers = []

    def call():
        try:
            barrier.wait()
            response = api.post("/customers", {"name": "Concurrent"}, **{"Idempotency-Key": "race"})
            answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [201] * 4
    assert len({body["id"] for _, body in answers}) == 1
    with all_tenants():
        assert Customer.objects.filter(name="Concurrent").count() == 1
