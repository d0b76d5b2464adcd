import pytest
from django.test import Client

from obol.api.auth import create_api_key
from obol.core.actors import Actor
from obol.core.tenancy import tenant_context


class ApiClient:
    """A test client that sends one tenant's API key and JSON bodies."""

    def __init__(self, key: str | None):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _send(self, method, path, body=None, **headers):
        kwargs = {"headers": {**self.headers, **headers}}
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        return getattr(self.client, method)(f"/api/v1{path}", **kwargs)

    def get(self, path, **params):
        return self.client.get(f"/api/v1{path}", params, headers=self.headers)

    def post(self, path, body=None, **headers):
        return self._send("post", path, body if body is not None else {}, **headers)

    def patch(self, path, body, **headers):
        return self._send("patch", path, body, **headers)

    def put(self, path, body, **headers):
        return self._send("put", path, body, **headers)


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
def anonymous(db):
    return ApiClient(None)
