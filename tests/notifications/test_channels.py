"""An alert reaches a real SMTP server and a real HTTP receiver; failures are recorded on the
delivery and retried later by send_pending, with backoff and a limit of attempts."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import pytest

from obol.core.clock import frozen
from obol.notifications import services
from obol.notifications.models import Delivery
from tests.notifications.helpers import IMPORTER, raise_unparseable

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def clerk_settings(in_tenant, clerk):
    def configure(**fields):
        return services.update_settings(clerk, **fields)
    return configure


def test_the_email_arrives_with_subject_recipients_and_details(
        in_tenant, clerk_settings, mail_to_smtp, django_capture_on_commit_callbacks):
    clerk_settings(email_recipients="ops@acme.test, billing@acme.test", webhook_url="")
    with frozen(T0):
        alert = raise_unparseable(django_capture_on_commit_callbacks)

    [mail] = mail_to_smtp.messages
    assert mail["from"] == "alerts@obol.test"
    assert mail["to"] == ["ops@acme.test", "billing@acme.test"]
    message = mail["message"]
    assert message["Subject"] == "[Obol acme] cdr-2026-03-01.csv cannot be parsed"
    body = message.get_content().replace("\r\n", "\n")
    assert "line 17 has 9 columns, 12 expected" in body
    assert "Kind: File cannot be parsed (file_unparseable)" in body
    assert "Severity: critical" in body
    assert "Reference: cdr-2026-03-01.csv" in body
    assert "Raised at: 2026-03-02T06:00:00+00:00" in body
    assert "  line: 17\n" in body and "  expected: 12\n" in body
    [delivery] = alert.deliveries.all()
    assert (delivery.channel, delivery.state, delivery.attempts, delivery.last_error) == ("email", "sent", 1, "")
    assert delivery.sent_at == T0


def test_the_webhook_arrives_with_the_json_and_a_valid_signature(
        in_tenant, clerk_settings, receiver, django_capture_on_commit_callbacks):
    settings = clerk_settings(webhook_url=receiver.url, webhook_secret="s3cret-of-acme")
    with frozen(T0):
        alert = raise_unparseable(django_capture_on_commit_callbacks)

    [request] = receiver.requests
    assert request["path"] == "/hooks/obol"
    assert request["json"] == {
        "id": alert.pk, "tenant": "acme", "kind": "file_unparseable", "severity": "critical",
        "subject": "cdr-2026-03-01.csv cannot be parsed",
        "message": "The usage file cdr-2026-03-01.csv could not be read: line 17 has 9 columns, 12 expected.",
        "details": {"line": 17, "columns": 9, "expected": 12},
        "created_at": "2026-03-02T06:00:00+00:00",
    }
    expected = "sha256=" + hmac.new(b"s3cret-of-acme", request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Obol-Signature"] == expected
    assert request["headers"]["Content-Type"] == "application/json"
    [delivery] = alert.deliveries.all()
    assert request["headers"]["X-Obol-Delivery"] == str(delivery.pk)
    assert (delivery.target, delivery.state, delivery.attempts) == (receiver.url, "sent", 1)
    assert settings.webhook_secret == "s3cret-of-acme"


def test_a_webhook_answering_500_fails_and_a_later_send_pending_retries_it(
        in_tenant, clerk_settings, receiver, django_capture_on_commit_callbacks):
    clerk_settings(webhook_url=receiver.url)
    receiver.status = 500
    with frozen(T0):
        alert = raise_unparseable(django_capture_on_commit_callbacks)  # does not raise
    delivery = alert.deliveries.get()
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "HTTP 500: receiver is broken"
    assert delivery.next_attempt_at == T0 + timedelta(minutes=1)

    with frozen(T0 + timedelta(seconds=30)):  # backoff not over: nothing is due
        assert services.send_pending() == services.SendReport(sent=0, failed=0)
    receiver.status = 200
    with frozen(T0 + timedelta(minutes=2)):
        assert services.send_pending() == services.SendReport(sent=1, failed=0)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    assert delivery.sent_at == T0 + timedelta(minutes=2)
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    with frozen(T0 + timedelta(hours=5)):  # a sent delivery is never sent again
        assert services.send_pending() == services.SendReport(sent=0, failed=0)
    assert len(receiver.requests) == 2


def test_no_server_fails_with_the_error_and_retries_stop_after_the_last_attempt(
        in_tenant, clerk_settings, dead_url, django_capture_on_commit_callbacks):
    clerk_settings(webhook_url=dead_url)
    with frozen(T0):
        alert = raise_unparseable(django_capture_on_commit_callbacks)
    delivery = alert.deliveries.get()
    assert delivery.state == "failed" and "ConnectError" in delivery.last_error

    moment = T0
    for attempt, wait in [(2, 1), (3, 4), (4, 16), (5, 64)]:  # minutes of backoff after each failure
        moment += timedelta(minutes=wait)
        with frozen(moment):
            assert services.send_pending() == services.SendReport(sent=0, failed=1)
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
    with frozen(moment + timedelta(days=1)):
        assert services.send_pending() == services.SendReport(sent=0, failed=0)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", services.MAX_ATTEMPTS)


def test_an_smtp_server_that_is_down_fails_the_email_and_the_retry_delivers_it(
        in_tenant, clerk_settings, settings, mail_to_smtp, django_capture_on_commit_callbacks):
    from tests.support.servers import free_port

    clerk_settings(email_recipients="ops@acme.test")
    smtp_port, settings.EMAIL_PORT = settings.EMAIL_PORT, free_port()
    with frozen(T0):
        alert = raise_unparseable(django_capture_on_commit_callbacks)
    delivery = alert.deliveries.get()
    assert delivery.state == "failed" and "refused" in delivery.last_error.lower()
    assert mail_to_smtp.messages == []

    settings.EMAIL_PORT = smtp_port
    with frozen(T0 + timedelta(minutes=1)):
        assert services.send_pending() == services.SendReport(sent=1, failed=0)
    assert [m["message"]["Subject"] for m in mail_to_smtp.messages] == [
        "[Obol acme] cdr-2026-03-01.csv cannot be parsed"]


def test_both_channels_are_sent_and_one_failing_does_not_stop_the_other(
        in_tenant, clerk_settings, mail_to_smtp, dead_url, django_capture_on_commit_callbacks):
    clerk_settings(email_recipients="ops@acme.test", webhook_url=dead_url)
    alert = raise_unparseable(django_capture_on_commit_callbacks)
    states = dict(alert.deliveries.values_list("channel", "state"))
    assert states == {Delivery.Channel.EMAIL: "sent", Delivery.Channel.WEBHOOK: "failed"}
    assert len(mail_to_smtp.messages) == 1


def test_disabled_channels_send_nothing(in_tenant, clerk_settings, mail_to_smtp, receiver,
                                        django_capture_on_commit_callbacks):
    clerk_settings(email_recipients="ops@acme.test", email_enabled=False, webhook_url=receiver.url,
                   webhook_enabled=False)
    alert = raise_unparseable(django_capture_on_commit_callbacks)
    assert alert.deliveries.count() == 0
    assert mail_to_smtp.messages == [] and receiver.requests == []


def test_the_payload_renders_decimals_in_details_as_plain_strings(in_tenant, clerk_settings, receiver,
                                                                  django_capture_on_commit_callbacks):
    from decimal import Decimal

    clerk_settings(webhook_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        services.raise_alert(IMPORTER, kind="no_tariff", reference="r.csv",
                             subject="No tariff", message="m", details={"amount": Decimal("0.0000001")})
    assert json.loads(receiver.requests[0]["body"])["details"] == {"amount": "0.0000001"}
