"""Raising alerts: stored in the caller's transaction, sent only after it commits, repeats counted
instead of re-sent, each tenant's own settings, the suspense-rate threshold."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import transaction

from obol.core.audit import history
from obol.core.clock import frozen
from obol.core.errors import Forbidden, ValidationFailed
from obol.core.tenancy import tenant_context
from obol.notifications import services
from obol.notifications.models import Alert, Delivery
from tests.notifications.helpers import IMPORTER, raise_unparseable

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def wired(in_tenant, clerk, mail_to_smtp, receiver):
    """Acme's alerts go to the local SMTP server and the local HTTP receiver."""
    services.update_settings(clerk, email_recipients="ops@acme.test", webhook_url=receiver.url)
    return mail_to_smtp, receiver


def test_a_rolled_back_transaction_stores_and_sends_nothing(wired, django_capture_on_commit_callbacks):
    inbox, receiver = wired
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.raise_alert(IMPORTER, kind="file_unparseable", subject="x.csv cannot be parsed",
                                 message="bad header", reference="x.csv")
            assert Alert.objects.count() == 1  # stored inside the transaction...
            raise RuntimeError("the import failed after raising the alert")
    assert callbacks == []
    assert Alert.objects.count() == 0 and Delivery.objects.count() == 0  # ...and gone with it
    assert inbox.messages == [] and receiver.requests == []


def test_nothing_is_sent_before_the_transaction_commits(wired, django_capture_on_commit_callbacks):
    inbox, receiver = wired
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert = services.raise_alert(IMPORTER, kind="no_tariff", subject="No tariff for 4420", message="m",
                                     reference="cdr-1.csv")
    assert inbox.messages == [] and receiver.requests == []
    assert sorted(alert.deliveries.values_list("state", flat=True)) == ["pending", "pending"]
    for callback in callbacks:  # the commit
        callback()
    assert len(inbox.messages) == 1 and len(receiver.requests) == 1
    assert sorted(alert.deliveries.values_list("state", flat=True)) == ["sent", "sent"]


def test_the_same_kind_and_reference_within_an_hour_is_counted_not_resent(
        wired, django_capture_on_commit_callbacks):
    inbox, receiver = wired
    with frozen(T0):
        first = raise_unparseable(django_capture_on_commit_callbacks)
    with frozen(T0 + timedelta(minutes=59)):
        again = raise_unparseable(django_capture_on_commit_callbacks)
        other_file = raise_unparseable(django_capture_on_commit_callbacks, reference="cdr-2026-03-02.csv")
    assert again.pk == first.pk
    assert (again.occurrences, again.last_raised_at) == (2, T0 + timedelta(minutes=59))
    assert other_file.pk != first.pk
    assert Alert.objects.count() == 2 and Delivery.objects.count() == 4
    assert len(inbox.messages) == 2 and len(receiver.requests) == 2

    with frozen(T0 + timedelta(minutes=61)):  # an hour after the stored alert: a new one, sent again
        later = raise_unparseable(django_capture_on_commit_callbacks)
    assert later.pk not in (first.pk, other_file.pk) and later.occurrences == 1
    assert len(inbox.messages) == 3 and len(receiver.requests) == 3
    assert [m["message"]["Subject"] for m in inbox.messages].count(
        "[Obol acme] cdr-2026-03-01.csv cannot be parsed") == 2


def test_another_tenants_settings_are_not_used(in_tenant, tenant, other_tenant, clerk, mail_to_smtp, receiver,
                                              django_capture_on_commit_callbacks):
    with tenant_context(other_tenant):
        services.update_settings(clerk, email_recipients="noc@globex.test", webhook_url=receiver.url)
    alert = raise_unparseable(django_capture_on_commit_callbacks)  # Acme has no settings yet
    assert alert.tenant_id == tenant.pk
    assert alert.deliveries.count() == 0
    assert mail_to_smtp.messages == [] and receiver.requests == []

    services.update_settings(clerk, email_recipients="ops@acme.test")
    raise_unparseable(django_capture_on_commit_callbacks, reference="next.csv")
    assert [m["to"] for m in mail_to_smtp.messages] == [["ops@acme.test"]]
    assert receiver.requests == []
    with tenant_context(other_tenant):
        assert Alert.objects.count() == 0  # and Globex does not see Acme's alerts


def test_a_webhook_is_signed_with_its_own_tenants_secret(in_tenant, other_tenant, clerk, receiver,
                                                        django_capture_on_commit_callbacks):
    import hashlib
    import hmac

    with tenant_context(other_tenant):
        services.update_settings(clerk, webhook_url=receiver.url, webhook_secret="globex-secret")
    services.update_settings(clerk, webhook_url=receiver.url, webhook_secret="acme-secret")
    raise_unparseable(django_capture_on_commit_callbacks)
    [request] = receiver.requests
    assert request["json"]["tenant"] == "acme"
    assert request["headers"]["X-Obol-Signature"] == (
        "sha256=" + hmac.new(b"acme-secret", request["body"], hashlib.sha256).hexdigest())


def test_the_alert_is_audited_and_acknowledging_it_names_who(in_tenant, clerk, django_capture_on_commit_callbacks):
    with frozen(T0 - timedelta(hours=2)):
        alert = raise_unparseable(django_capture_on_commit_callbacks)
    with frozen(T0):
        assert services.acknowledge(clerk, [alert]) == 1
        assert services.acknowledge(clerk, [alert]) == 0
    alert.refresh_from_db()
    assert (alert.acknowledged_at, alert.acknowledged_by) == (T0, "clerk@acme")
    assert [e.action for e in history(alert)] == ["alert.acknowledge", "alert.raise"]


def test_a_reader_may_not_raise_or_acknowledge_and_unknown_kinds_are_refused(
        in_tenant, reader, django_capture_on_commit_callbacks):
    with pytest.raises(Forbidden):
        services.raise_alert(reader, kind="no_tariff", subject="s", message="m")
    with pytest.raises(ValidationFailed) as refused:
        services.raise_alert(IMPORTER, kind="disk_full", subject="s", message="m")
    assert (refused.value.code, refused.value.field) == ("invalid_alert_kind", "kind")
    alert = raise_unparseable(django_capture_on_commit_callbacks)
    with pytest.raises(Forbidden):
        services.acknowledge(reader, [alert])
    assert Alert.objects.count() == 1


@pytest.mark.parametrize(("read", "suspended", "raised"), [
    (100, 5, False),    # exactly 5 %: not above the threshold
    (100, 6, True),
    (1000, 51, True),   # 5.1 %
    (1000, 50, False),
    (0, 0, False),      # an empty file
])
def test_the_suspense_rate_is_compared_exactly_with_the_threshold(in_tenant, read, suspended, raised):
    assert services.exceeds_suspense_threshold(read, suspended, Decimal("5")) is raised


def test_a_file_above_the_suspense_threshold_sends_an_email(wired, clerk, django_capture_on_commit_callbacks):
    inbox, _ = wired
    assert services.alert_settings().suspense_threshold_percent == Decimal("5")
    with django_capture_on_commit_callbacks(execute=True):
        below = services.check_suspense_rate(IMPORTER, read=200, suspended=10, reference="ok.csv")
        above = services.check_suspense_rate(IMPORTER, read=200, suspended=11, reference="bad.csv",
                                             details={"by_reason": {"unknown_subscriber": 11}})
    assert below is None
    assert (above.kind, above.severity) == ("suspense_rate", "warning")
    assert above.details == {"read": 200, "suspended": 11, "threshold_percent": "5",
                             "by_reason": {"unknown_subscriber": 11}}
    [mail] = inbox.messages
    assert mail["message"]["Subject"] == "[Obol acme] 11 of 200 records of bad.csv went to suspense"

    services.update_settings(clerk, suspense_threshold_percent=Decimal("6"))
    assert services.check_suspense_rate(IMPORTER, read=200, suspended=12, reference="b.csv") is None


def test_settings_are_validated_and_the_secret_never_reaches_the_audit_trail(in_tenant, clerk):
    settings = services.update_settings(clerk, webhook_url="https://hooks.acme.test/obol", webhook_secret="x" * 40)
    assert len(services.alert_settings().webhook_secret) == 40
    with pytest.raises(ValidationFailed) as refused:
        services.update_settings(clerk, suspense_threshold_percent=Decimal("101"))
    assert refused.value.field == "suspense_threshold_percent"
    with pytest.raises(ValidationFailed) as refused:
        services.update_settings(clerk, webhook_url="not a url")
    assert refused.value.field == "webhook_url"
    with pytest.raises(ValidationFailed):
        services.update_settings(clerk, colour="red")
    services.update_settings(clerk, webhook_secret="y" * 40)
    trail = [e.changes for e in history(settings)]
    assert "x" * 40 not in str(trail) and "y" * 40 not in str(trail)
    assert trail[0] == {"webhook_secret": ["(hidden)", "(changed)"]}
    assert services.alert_settings().suspense_threshold_percent == Decimal("5")
