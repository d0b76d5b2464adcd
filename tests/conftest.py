"""Shared fixtures. Database tests run on SQLite by default and on PostgreSQL when
OBOL_DATABASE_URL points at it (`make test` does both when OBOL_TEST_DATABASE_URL is set)."""
from __future__ import annotations

import pytest

from obol.api.auth import create_api_key
from obol.core.actors import Actor
from obol.core.models import Tenant
from obol.core.roles import Role
from obol.core.tenancy import tenant_context
from tests.support.api_client import ApiClient
from tests.support.staff import log_in_staff


@pytest.fixture
def tenant(db):
    return Tenant.objects.create(code="acme", name="Acme Telecom", country="DE", default_currency="EUR")


@pytest.fixture
def other_tenant(db):
    return Tenant.objects.create(code="globex", name="Globex Mobile", country="FR", default_currency="EUR")


@pytest.fixture
def in_tenant(tenant):
    """Run the test inside the tenant's scope."""
    with tenant_context(tenant):
        yield tenant


@pytest.fixture
def clerk():
    return Actor("user", "1", "clerk@acme", Role.CLERK)


@pytest.fixture
def reader():
    return Actor("user", "2", "reader@acme", Role.READONLY)


@pytest.fixture
def system():
    return Actor.process("test")


def _key(tenant, role):
    with tenant_context(tenant):
        return create_api_key(Actor.process("test"), f"{role} key", role)[1]


@pytest.fixture
def api(tenant):
    return ApiClient(_key(tenant, "clerk"))


@pytest.fixture
def readonly_api(tenant):
    return ApiClient(_key(tenant, "readonly"))


@pytest.fixture
def other_api(other_tenant):
    return ApiClient(_key(other_tenant, "clerk"))


@pytest.fixture
def staff(client, tenant):
    """The test client logged in to the back office as the tenant's admin."""
    return log_in_staff(client, tenant, Role.ADMIN)


@pytest.fixture
def anonymous(db):
    return ApiClient(None)


# Real local servers (SMTP, HTTP receiver) for the alert tests of every app.
from tests.support.servers import dead_url, mail_to_smtp, receiver, smtp_server  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _fresh_charging_caches():
    """Real-time charging keeps per-process snapshots of subscriber mappings and tariff catalogs keyed
    by tenant id; a test database reuses ids, so every test starts without them."""
    from obol.charging import service
    service._snapshots.clear()
    service._CATALOGS.clear()
    yield
    service._snapshots.clear()
    service._CATALOGS.clear()
