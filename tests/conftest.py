"""Shared fixtures. Database tests run on SQLite by default and on PostgreSQL when
OBOL_DATABASE_URL points at it (`make test` does both when OBOL_TEST_DATABASE_URL is set)."""
from __future__ import annotations

import pytest

from obol.core.actors import Actor
from obol.core.models import Tenant
from obol.core.roles import Role
from obol.core.tenancy import tenant_context


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
