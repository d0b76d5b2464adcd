"""Every back-office page of the demo tenant opens for its administrator: lists, add forms and
the change page of a real row, for every model in the admin."""
import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from obol.core.tenancy import tenant_context
from obol.demo.loader import load_demo

pytestmark = pytest.mark.django_db


def test_every_admin_page_opens_and_the_viewer_cannot_add():
    load_demo()
    for username in ("admin", "viewer"):
        _open_every_page(username)
    client = Client()
    client.force_login(get_user_model().objects.get(username="viewer"))
    page = client.get("/admin/customers/customer/").content.decode()
    assert "DEMO-0001" in page and "/admin/customers/customer/add/" not in page


def _open_every_page(username):
    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    tenant = user.staff_profile.tenant
    opened = 0
    for model, model_admin in admin.site._registry.items():
        info = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        listing = client.get(info)
        if listing.status_code == 403:
            continue  # e.g. staff profiles: platform superusers only
        assert listing.status_code == 200, info
        with tenant_context(tenant):
            first = model_admin.get_queryset(_request(user)).first()
        if first is not None:
            page = client.get(f"{info}{first.pk}/change/")
            assert page.status_code == 200, f"{info}{first.pk}/change/"
        opened += 1
    assert opened >= 12


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request
