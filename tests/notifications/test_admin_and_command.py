"""Alerts in the back office (list with filters, deliveries on the alert page, the acknowledge
action for clerks, not for read-only staff; settings editable) and `obol notifications send`."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from obol.core.clock import frozen
from obol.core.models import AuditEvent, StaffProfile
from obol.core.tenancy import tenant_context
from obol.notifications import services
from obol.notifications.models import Alert, AlertSettings
from tests.notifications.helpers import IMPORTER, raise_unparseable

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


def staff_client(tenant, username, role) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-123456", is_staff=True)
    StaffProfile.objects.create(user=user, tenant=tenant, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alerts(tenant, other_tenant, clerk, dead_url, django_capture_on_commit_callbacks):
    """Acme: an unparseable file (its webhook failed) and a no-tariff alert; Globex: one of its own."""
    with tenant_context(tenant):
        services.update_settings(clerk, webhook_url=dead_url)
        broken = raise_unparseable(django_capture_on_commit_callbacks)
        no_tariff = services.raise_alert(IMPORTER, kind="no_tariff", subject="No tariff for 99999",
                                         message="m", reference="cdr-3.csv")
    with tenant_context(other_tenant):
        services.raise_alert(IMPORTER, kind="no_tariff", subject="Globex secret alert", message="m")
    return broken, no_tariff


def test_the_alert_list_filters_and_shows_deliveries(tenant, alerts):
    broken, _ = alerts
    client = staff_client(tenant, "viewer", "readonly")
    page = client.get("/admin/notifications/alert/").content.decode()
    assert "cdr-2026-03-01.csv cannot be parsed" in page and "No tariff for 99999" in page
    assert "Globex secret alert" not in page
    page = client.get("/admin/notifications/alert/?kind=no_tariff").content.decode()
    assert "No tariff for 99999" in page and "cdr-2026-03-01.csv cannot be parsed" not in page
    page = client.get("/admin/notifications/alert/?severity=critical").content.decode()
    assert "cdr-2026-03-01.csv cannot be parsed" in page and "No tariff for 99999" not in page
    detail = client.get(f"/admin/notifications/alert/{broken.pk}/change/")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "ConnectError" in text and "Failed" in text  # the failed webhook delivery, inline


def test_a_clerk_acknowledges_alerts_and_a_reader_cannot(tenant, alerts):
    broken, no_tariff = alerts
    action = {"action": "acknowledge", "_selected_action": [broken.pk]}
    reader = staff_client(tenant, "viewer", "readonly")
    reader.post("/admin/notifications/alert/", action)
    broken.refresh_from_db()
    assert broken.acknowledged_at is None

    clerk = staff_client(tenant, "clerk", "clerk")
    response = clerk.post("/admin/notifications/alert/", action)
    assert response.status_code == 302
    broken.refresh_from_db()
    no_tariff.refresh_from_db()
    assert broken.acknowledged_by == "clerk" and broken.acknowledged_at is not None
    assert no_tariff.acknowledged_at is None
    page = clerk.get("/admin/notifications/alert/?acknowledged_at__isnull=True").content.decode()
    assert "No tariff for 99999" in page and "cdr-2026-03-01.csv cannot be parsed" not in page
    with tenant_context(tenant):
        assert AuditEvent.objects.filter(action="alert.acknowledge", object_id=str(broken.pk)).count() == 1
    assert clerk.get(f"/admin/notifications/alert/{broken.pk}/change/").status_code == 200
    assert clerk.get("/admin/notifications/alert/add/").status_code == 403


def test_a_clerk_edits_the_alert_settings_in_the_admin(tenant):
    client = staff_client(tenant, "clerk", "clerk")
    form = {"email_enabled": "on", "email_recipients": "ops@acme.test", "webhook_enabled": "on",
            "webhook_url": "https://hooks.acme.test/obol", "webhook_secret": "admin-secret",
            "suspense_threshold_percent": "2.5"}
    response = client.post("/admin/notifications/alertsettings/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(tenant):
        settings = AlertSettings.objects.get()
        assert settings.recipients() == ["ops@acme.test"]
        assert str(settings.suspense_threshold_percent) == "2.5"
    assert client.post("/admin/notifications/alertsettings/add/", form).status_code == 403  # one per tenant
    assert client.get(f"/admin/notifications/alertsettings/{settings.pk}/change/").status_code == 200
    with tenant_context(tenant):
        assert AlertSettings.objects.count() == 1


def test_the_send_command_retries_due_deliveries_of_every_tenant(tenant, other_tenant, clerk, receiver,
                                                                 django_capture_on_commit_callbacks):
    for each in (tenant, other_tenant):
        with tenant_context(each), frozen(T0):
            services.update_settings(clerk, webhook_url=receiver.url)
            receiver.status = 503
            raise_unparseable(django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 2
    receiver.status = 200
    out = StringIO()
    with frozen(T0 + timedelta(minutes=5)):
        call_command("notifications", "send", stdout=out)
    assert out.getvalue().strip() == "2 delivery(ies) sent, 0 failed"
    assert sorted(r["json"]["tenant"] for r in receiver.requests[2:]) == ["acme", "globex"]
    with tenant_context(other_tenant):
        assert Alert.objects.get().deliveries.get().state == "sent"
