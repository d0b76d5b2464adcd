"""The lean charging path (charging/fast.py, PostgreSQL) gives the answers, balances, ledger entries
and rated records the Django routes give, on the same tables: the worked example, replays, refusals,
sessions that move between the two paths, and 64 concurrent sessions on one pocket."""
import asyncio
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.db import connection

from obol.api.auth import create_api_key
from obol.balances import services as balances
from obol.balances.models import LedgerEntry, Pocket
from obol.charging import service as charging
from obol.charging.models import ChargingSession
from obol.core.clock import frozen
from obol.core.money import Amount
from obol.core.tenancy import tenant_context
from obol.usage.models import RatedRecord
from tests.usage.test_import_pipeline import prepare

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "postgresql", reason="the lean path runs on PostgreSQL")]
TUESDAY_10 = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
MOBILE, PREPAID = "491701234567", "491522222222"


@pytest.fixture
def lean(tenant, system, clerk):
    """(run, key): `run(coroutine function of an httpx client)` against the lean app on the test database."""
    from obol.charging import fast
    with tenant_context(tenant):
        prepare(tenant, system, clerk)
        _, key = create_api_key(system, "switch")
    settings = connection.settings_dict
    conninfo = (f"postgresql://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
                f"/{settings['NAME']}")

    def run(scenario):
        async def main():
            await fast.open_pool(conninfo)
            try:
                transport = httpx.ASGITransport(app=fast.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://obol",
                                             headers={"Authorization": f"Bearer {key}"}) as client:
                    return await scenario(client)
            finally:
                await fast.close_pool()
        with frozen(TUESDAY_10):
            return asyncio.run(main())

    return run


def money(tenant):
    with tenant_context(tenant):
        return Pocket.objects.get(account__number="A-2", source="topup").balance


def test_the_worked_example_on_the_lean_path(lean, tenant):
    async def call(client):
        first = await client.post("/api/v1/charging/sessions", json={
            "request_id": "r1", "subscriber": PREPAID, "service": "voice", "destination": MOBILE, "requested": 300})
        sid = first.json()["session_id"]
        second = await client.post(f"/api/v1/charging/sessions/{sid}/update",
                                   json={"request_id": "r2", "used": 300, "requested": 600})
        last = await client.post(f"/api/v1/charging/sessions/{sid}/terminate", json={"request_id": "r3", "used": 61})
        replay = await client.post(f"/api/v1/charging/sessions/{sid}/terminate",
                                   json={"request_id": "r3", "used": 61})
        return first, second, last, replay

    first, second, last, replay = lean(call)
    assert (first.status_code, first.json()["code"], first.json()["granted"]) == (201, "ok", 300)
    assert (second.status_code, second.json()["granted"]) == (200, 300)
    assert (last.status_code, last.json()["charged"], last.json()["used"]) == (200, "0.7", 361)
    assert replay.json() == last.json()
    assert money(tenant) == Decimal("0.30")
    with tenant_context(tenant):
        session = ChargingSession.objects.get()
        assert (session.state, session.holds, session.charged) == ("terminated", {}, Decimal("0.70"))
        debit = LedgerEntry.objects.get(reference=f"charging:{session.key}")
        assert (debit.amount, debit.balance_after) == (Decimal("-0.70"), Decimal("0.30"))
        record = RatedRecord.objects.get(record_key=f"charging:{session.key}")
        assert (record.quantity, record.billed, record.price_micros, record.time_band) == (361, 420, 700_000, "peak")
        assert balances.verify() == []


def test_refusals_and_events_on_the_lean_path(lean, tenant):
    async def call(client):
        unknown = await client.post("/api/v1/charging/sessions", json={
            "request_id": "u", "subscriber": "491999999999", "service": "voice", "destination": MOBILE,
            "requested": 60})
        sms = [await client.post("/api/v1/charging/events", json={
            "request_id": f"sms-{i}", "subscriber": PREPAID, "service": "sms", "destination": MOBILE})
            for i in range(12)]
        no_session = await client.post("/api/v1/charging/sessions/0b7c1f7e-0000-4000-8000-000000000000/terminate",
                                       json={"request_id": "t", "used": 1})
        invalid = await client.post("/api/v1/charging/sessions", json={
            "request_id": "i", "subscriber": PREPAID, "service": "voice", "requested": -5})
        no_key = await client.post("/api/v1/charging/events", json={}, headers={"Authorization": "Bearer nope"})
        return unknown, sms, no_session, invalid, no_key

    unknown, sms, no_session, invalid, no_key = lean(call)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_subscriber")
    assert [a.json()["code"] for a in sms] == ["ok"] * 11 + ["no_credit"]  # 11 x 0.09 of 1.00
    assert sms[-1].status_code == 402
    assert (no_session.status_code, no_session.json()["code"]) == (404, "unknown_session")
    assert invalid.status_code == 422 and invalid.json()["error"]["field"] == "requested"
    assert no_key.status_code == 401
    assert money(tenant) == Decimal("0.01")


def test_a_session_opened_on_the_lean_path_ends_through_the_service(lean, tenant, system):
    async def call(client):
        return (await client.post("/api/v1/charging/sessions", json={
            "request_id": "x1", "subscriber": PREPAID, "service": "voice", "destination": MOBILE,
            "requested": 120})).json()

    started = lean(call)
    with tenant_context(tenant), frozen(TUESDAY_10):
        ended = charging.terminate(system, started["session_id"], request_id="x2", used=100)
    assert (ended.code, ended.charged) == ("ok", Decimal("0.20"))
    assert money(tenant) == Decimal("0.80")


def test_64_concurrent_sessions_on_one_pocket_on_the_lean_path(lean, tenant, system):
    with tenant_context(tenant):
        account = Pocket.objects.get(account__number="A-2", source="topup").account
        balances.top_up(system, account, Amount("9.00", "EUR"), reference="PAY-2")

    async def call(client):
        async def one(i):
            started = await client.post("/api/v1/charging/sessions", json={
                "request_id": f"s-{i}", "subscriber": PREPAID, "service": "voice", "destination": MOBILE,
                "requested": 600})
            if started.json()["code"] != "ok":
                return started.json()["code"], Decimal(0)
            ended = await client.post(f"/api/v1/charging/sessions/{started.json()['session_id']}/terminate",
                                      json={"request_id": f"t-{i}", "used": started.json()["granted"]})
            return ended.json()["code"], Decimal(ended.json()["charged"])
        return await asyncio.gather(*(one(i) for i in range(64)))

    results = lean(call)
    committed = sum(charged for _, charged in results)
    assert committed <= Decimal("10.00")
    assert money(tenant) == Decimal("10.00") - committed
    assert sorted(code for code, _ in results).count("ok") == 10 and committed == Decimal("10.00")
    with tenant_context(tenant):
        assert balances.verify() == []


def test_the_lean_path_refuses_what_the_service_refuses(lean, tenant, system):
    async def call(client):
        await client.post("/api/v1/charging/sessions", json={
            "request_id": "R", "subscriber": PREPAID, "service": "voice", "destination": MOBILE, "requested": 60})
        reused_bad = await client.post("/api/v1/charging/sessions/not-a-uuid/terminate",
                                       json={"request_id": "R", "used": 1})
        reused_unknown = await client.post(
            "/api/v1/charging/sessions/0b7c1f7e-0000-4000-8000-000000000000/terminate",
            json={"request_id": "R", "used": 1})
        long_destination = await client.post("/api/v1/charging/sessions", json={
            "request_id": "L", "subscriber": PREPAID, "service": "voice", "destination": MOBILE + "0" * 40,
            "requested": 60})
        long_id = await client.post("/api/v1/charging/events", json={
            "request_id": "e" * 195, "subscriber": PREPAID, "service": "sms", "destination": MOBILE})
        duplicates = await asyncio.gather(*[client.post("/api/v1/charging/sessions", json={
            "request_id": "dup", "subscriber": "491999999999", "service": "voice", "destination": MOBILE,
            "requested": 60}) for _ in range(8)])
        return reused_bad, reused_unknown, long_destination, long_id, duplicates

    reused_bad, reused_unknown, long_destination, long_id, duplicates = lean(call)
    assert [r.json()["error"]["code"] for r in (reused_bad, reused_unknown)] == ["request_id_reused"] * 2
    assert long_destination.status_code == 422 and long_destination.json()["error"]["field"] == "destination"
    assert (long_id.status_code, long_id.json()["charged"]) == (200, "0.09")
    assert {(d.status_code, d.json()["code"]) for d in duplicates} == {(404, "unknown_subscriber")}
