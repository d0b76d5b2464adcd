"""The charging load generator (bench/charging_load.py) against the real Django app under gunicorn on
the test database: what it counts are real start/update/terminate cycles, and the money the answers
say was charged is exactly what the pockets lost."""
import os
from decimal import Decimal

import pytest
from bench import charging_load
from bench.charging import Server, command, free_port, populate
from django.db import connection

from obol.api.auth import create_api_key
from obol.balances import services as balances
from obol.balances.models import Pocket
from obol.charging.models import ChargingSession
from obol.core.tenancy import tenant_context
from tests.support.databases import database_url

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="the server shares the test database: "
                                                                           "PostgreSQL")]
TOP_UP = Decimal("1000000.00")


def test_two_clients_against_gunicorn_charge_exactly_what_the_answers_say(tenant, system):
    tenant.timezone = "Europe/Berlin"
    tenant.save()
    with tenant_context(tenant):
        msisdns = populate(system, 2, top_up=TOP_UP)
        key = create_api_key(system, "load test", "clerk")[1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OBOL_DATABASE_URL": database_url(), "OBOL_DEBUG": "0"}
    with Server(command("plain", port, 2, "sync"), env, base, key).start():
        result = charging_load.run(base, key, msisdns, clients=2, seconds=2, warmup=0.5)

    assert result["cycles"] > 0 and result["ops"] > 0 and result["ops_per_s"] > 0
    assert result["codes_all"] == {"ok": result["requests_all"]}  # every answer of the run, warm-up included
    assert result["requests_all"] == 3 * result["cycles_all"]
    assert (result["transport_errors"], result["abandoned_cycles"]) == (0, 0)
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["p99"]
    charged = Decimal(result["charged_all"])
    # a cycle is 60 + 30 s used: 2 started minutes at 0.05 (weekend) to 0.10 (peak) a minute
    assert Decimal("0.10") * result["cycles_all"] <= charged <= Decimal("0.20") * result["cycles_all"]
    with tenant_context(tenant):
        left = [Pocket.objects.get(account__number=f"B-{i}", unit="EUR").balance for i in (1, 2)]
        assert sum(TOP_UP - balance for balance in left) == charged
        assert all(balance < TOP_UP for balance in left)  # each client charged its own account
        assert ChargingSession.objects.filter(state="terminated").count() == result["cycles_all"]
        assert not ChargingSession.objects.filter(state="open").exists()
        assert balances.verify() == []
