"""A test client for the REST API that sends one tenant's key and JSON bodies."""
from django.test import Client


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
