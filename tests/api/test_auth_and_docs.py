"""Authentication, the OpenAPI document and the docs page."""
import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_without_a_key_every_route_answers_401(anonymous):
    for path in ["/customers", "/accounts", "/subscriptions", "/plans", "/customers/1"]:
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    assert anonymous.post("/customers", {"name": "X"}).status_code == 401


def test_a_wrong_or_revoked_key_is_refused(tenant, api):
    from tests.support.api_client import ApiClient

    assert ApiClient("obol_deadbeef_not-a-real-key").get("/customers").status_code == 401
    assert ApiClient("garbage").get("/customers").status_code == 401
    assert api.get("/customers").status_code == 200


def test_the_x_api_key_header_works_too(api):
    from django.test import Client

    key = api.headers["Authorization"].removeprefix("Bearer ")
    assert Client().get("/api/v1/customers", headers={"X-API-Key": key}).status_code == 200


def test_openapi_document_is_served_and_valid(anonymous):
    response = anonymous.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    for path in ["/api/v1/customers", "/api/v1/accounts", "/api/v1/plans", "/api/v1/subscriptions",
                 "/api/v1/subscriptions/{subscription_id}/terminate"]:
        assert path in document["paths"], path


def test_docs_page_uses_only_local_assets(anonymous):
    response = anonymous.client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn." not in html and "https://" not in html.replace("https://swagger.io", "")
