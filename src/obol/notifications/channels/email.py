"""Alerts by e-mail, through Django's mail API (EMAIL_* settings, filled from OBOL_SMTP_*)."""
from __future__ import annotations

import json

from django.conf import settings
from django.core.mail import EmailMessage

from obol.notifications.channels import DeliveryFailed


def subject(alert) -> str:
    return f"[Obol {alert.tenant.code}] {alert.subject}"


def body(alert) -> str:
    lines = [alert.message, "", f"Kind: {alert.get_kind_display()} ({alert.kind})",
             f"Severity: {alert.severity}"]
    if alert.reference:
        lines.append(f"Reference: {alert.reference}")
    lines.append(f"Raised at: {alert.created_at.isoformat()}")
    if alert.details:
        lines += ["", "Details:"]
        for key, value in alert.details.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"  {key}: {shown}")
    lines += ["", f"Alert {alert.pk} of tenant {alert.tenant.name} ({alert.tenant.code})."]
    return "\n".join(lines) + "\n"


def send(alert, delivery) -> None:
    recipients = [address.strip() for address in delivery.target.split(",") if address.strip()]
    if not recipients:
        raise DeliveryFailed("no e-mail recipients")
    message = EmailMessage(subject(alert), body(alert), from_email=settings.DEFAULT_FROM_EMAIL, to=recipients)
    if message.send(fail_silently=False) != 1:
        raise DeliveryFailed("the mail backend did not send the message")
