"""Alerts and their outbox.

`AlertSettings` (one per tenant) says where alerts go: e-mail recipients, a webhook URL with the
secret that signs its requests, and the suspense-rate threshold the usage import compares with.
An `Alert` is what happened (kind, severity, subject, message, details, the file or object it is
about); raising the same kind for the same reference again within an hour only counts it
(`occurrences`). A `Delivery` is one sending of an alert on one channel: pending until sent,
failed (with the error) until a retry succeeds or the attempts run out.
"""
from __future__ import annotations

import secrets
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from obol.core import clock
from obol.core.fields import ExactDecimalField
from obol.core.tenancy import TenantOwned

__all__ = ["Alert", "AlertSettings", "Delivery"]


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class AlertSettings(TenantOwned):
    email_enabled = models.BooleanField(default=True, help_text="Send alerts by e-mail to the recipients below")
    email_recipients = models.TextField(blank=True, help_text="E-mail addresses, separated by commas")
    webhook_enabled = models.BooleanField(default=True, help_text="POST alerts to the webhook URL below")
    webhook_url = models.URLField(blank=True, max_length=500,
                                  help_text="Receives a JSON POST per alert; empty: no webhook")
    webhook_secret = models.CharField(
        max_length=200, default=new_webhook_secret,
        help_text="Signs each webhook body: header X-Obol-Signature: sha256=<HMAC-SHA256 of the body>")
    suspense_threshold_percent = ExactDecimalField(
        default=Decimal("5"), validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="A usage file with more suspended records than this share (percent) raises an alert")

    class Meta:
        verbose_name = "alert settings"
        verbose_name_plural = "alert settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="alert_settings_one_per_tenant")]

    def __str__(self) -> str:
        return "Alert settings"

    def recipients(self) -> list[str]:
        return [address.strip() for address in self.email_recipients.split(",") if address.strip()]


class Alert(TenantOwned):
    class Kind(models.TextChoices):
        FILE_UNPARSEABLE = "file_unparseable", "File cannot be parsed"
        SUSPENSE_RATE = "suspense_rate", "Suspense rate above threshold"
        NO_TARIFF = "no_tariff", "Usage with no tariff"
        IMPORT_INTERRUPTED = "import_interrupted", "Import stopped (a rerun resumes it)"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    subject = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    reference = models.CharField(max_length=300, blank=True,
                                 help_text="What the alert is about, e.g. the file name")
    created_at = models.DateTimeField(default=clock.now, editable=False)
    occurrences = models.PositiveIntegerField(
        default=1, help_text="How often it was raised; repeats within an hour are counted, not sent again")
    last_raised_at = models.DateTimeField(default=clock.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "kind", "reference", "created_at"], name="alert_repeat_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class Delivery(TenantOwned):
    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.TextField(help_text="The recipients (e-mail) or the URL (webhook)")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    next_attempt_at = models.DateTimeField(default=clock.now,
                                           help_text="Not tried again before this moment")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.target}"
