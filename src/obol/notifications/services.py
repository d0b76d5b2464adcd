"""Alert use cases: raise an alert, send what is due, acknowledge, change a tenant's alert settings.

`raise_alert` writes in the caller's transaction and sends after it commits (a rolled-back
transaction sends nothing). Sending never raises into the caller: a failure is recorded on the
delivery and retried by `send_pending` (the `obol notifications send` cron job) with backoff.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from obol.core import audit, clock, locks
from obol.core.actors import Actor
from obol.core.errors import ValidationFailed
from obol.core.money import to_decimal
from obol.core.tenancy import current_tenant, tenant_context
from obol.core.validation import full_clean
from obol.notifications.channels import email, webhook
from obol.notifications.models import Alert, AlertSettings, Delivery

log = logging.getLogger(__name__)

REPEAT_WINDOW = timedelta(hours=1)  # the same (kind, reference) again within this is counted, not sent
MAX_ATTEMPTS = 5
SENDING_LEASE = timedelta(minutes=10)  # a delivery left 'sending' by a crashed sender is retried after this
DEFAULT_SEVERITY = {
    Alert.Kind.FILE_UNPARSEABLE: Alert.Severity.CRITICAL,
    Alert.Kind.SUSPENSE_RATE: Alert.Severity.WARNING,
    Alert.Kind.NO_TARIFF: Alert.Severity.WARNING,
}
SETTINGS_FIELDS = ("email_enabled", "email_recipients", "webhook_enabled", "webhook_url", "webhook_secret",
                   "suspense_threshold_percent")


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` failed ones: 1, 4, 16, 64 minutes."""
    return timedelta(minutes=4 ** (max(attempts, 1) - 1))


# --- settings -----------------------------------------------------------------------------------

def alert_settings() -> AlertSettings:
    """The tenant's alert settings; an unsaved default (no recipients, threshold 5 %) when none exist."""
    return AlertSettings.objects.filter(tenant=current_tenant()).first() or AlertSettings(tenant=current_tenant())


def update_settings(actor: Actor, **fields) -> AlertSettings:
    """Create or change the tenant's alert settings (any of SETTINGS_FIELDS)."""
    actor.require_write()
    unknown = set(fields) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown alert setting(s): {', '.join(sorted(unknown))}", field=min(unknown))
    with transaction.atomic():
        current = AlertSettings.objects.select_for_update().filter(tenant=current_tenant()).first()
        created = current is None
        current = current or AlertSettings(tenant=current_tenant())
        before = {name: getattr(current, name) for name in fields}
        for name, value in fields.items():
            setattr(current, name, value)
        full_clean(current)
        current.save()
        changes = audit.diff(before, fields)
        if "webhook_secret" in changes:  # the audit trail says it changed, never what it is
            changes["webhook_secret"] = ["(hidden)", "(changed)"]
        audit.record(actor, f"alertsettings.{'create' if created else 'change'}", current, changes)
    return current


def exceeds_suspense_threshold(read: int, suspended: int, threshold_percent: Decimal) -> bool:
    """True when suspended/read is above the threshold (exact: no division, no rounding)."""
    return read > 0 and Decimal(suspended) * 100 > to_decimal(threshold_percent) * read


# --- raising --------------------------------------------------------------------------------------

def raise_alert(actor: Actor, *, kind: str, subject: str, message: str, details: dict | None = None,
                reference: str = "", severity: str | None = None) -> Alert:
    """Store an alert and its deliveries in the caller's transaction; send them after it commits.

    The same (kind, reference) raised again within an hour of the stored alert is not sent again:
    that alert's `occurrences` grows and it is returned."""
    actor.require_write()
    if kind not in Alert.Kind.values:
        raise ValidationFailed(f"kind: {kind!r} is not an alert kind ({', '.join(Alert.Kind.values)})",
                               field="kind", code="invalid_alert_kind")
    now = clock.now()
    with transaction.atomic():
        locks.serialise("alert", kind, reference)
        repeat = (Alert.objects.filter(kind=kind, reference=reference, created_at__gt=now - REPEAT_WINDOW)
                  .order_by("-created_at", "-id").first())
        if repeat is not None:
            Alert.objects.filter(pk=repeat.pk).update(occurrences=F("occurrences") + 1, last_raised_at=now)
            repeat.refresh_from_db()
            return repeat
        alert = Alert(kind=kind, severity=severity or DEFAULT_SEVERITY.get(kind, Alert.Severity.WARNING),
                      subject=subject, message=message, details=audit.jsonable(details or {}),
                      reference=reference, created_at=now, last_raised_at=now)
        full_clean(alert)
        alert.save()
        deliveries = Delivery.objects.bulk_create(_deliveries(alert, now))
        audit.record(actor, "alert.raise", alert, {
            "kind": kind, "reference": reference,
            "deliveries": [f"{d.channel}: {d.target}" for d in deliveries]})
        tenant, ids = current_tenant(), [d.pk for d in deliveries]
        if ids:
            transaction.on_commit(lambda: _send_after_commit(tenant, ids), robust=True)
    return alert


def check_suspense_rate(actor: Actor, *, read: int, suspended: int, reference: str,
                        details: dict | None = None) -> Alert | None:
    """Raise a `suspense_rate` alert when a file's suspended share is above the tenant's threshold."""
    threshold = alert_settings().suspense_threshold_percent
    if not exceeds_suspense_threshold(read, suspended, threshold):
        return None
    return raise_alert(
        actor, kind=Alert.Kind.SUSPENSE_RATE, reference=reference,
        subject=f"{suspended} of {read} records of {reference} went to suspense",
        message=(f"{suspended} of {read} usage records of {reference} could not be rated and went to "
                 f"suspense, more than the threshold of {threshold} %."),
        details={"read": read, "suspended": suspended, "threshold_percent": threshold, **(details or {})})


def _deliveries(alert: Alert, now) -> list[Delivery]:
    settings = AlertSettings.objects.filter(tenant_id=alert.tenant_id).first()
    if settings is None:
        return []
    found = []
    if settings.email_enabled and settings.recipients():
        found.append(Delivery(tenant_id=alert.tenant_id, alert=alert, channel=Delivery.Channel.EMAIL,
                              target=", ".join(settings.recipients()), created_at=now, next_attempt_at=now))
    if settings.webhook_enabled and settings.webhook_url:
        found.append(Delivery(tenant_id=alert.tenant_id, alert=alert, channel=Delivery.Channel.WEBHOOK,
                              target=settings.webhook_url, created_at=now, next_attempt_at=now))
    return found


# --- sending --------------------------------------------------------------------------------------

@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0


def send_pending(limit: int = 100) -> SendReport:
    """Try the deliveries that are due (pending, or failed and past their backoff, fewer than
    MAX_ATTEMPTS tries) in the tenant scope in force: one tenant, or all_tenants() for the cron job.

    Deliberately not one transaction: each delivery's outcome is committed as soon as it is known,
    so a crash half-way never sends a delivery twice nor forgets one that was sent."""
    due = (Delivery.objects.filter(state__in=[Delivery.State.PENDING, Delivery.State.FAILED, Delivery.State.SENDING],
                                   attempts__lt=MAX_ATTEMPTS, next_attempt_at__lte=clock.now())
           .select_related("alert", "alert__tenant").order_by("next_attempt_at", "id")[:limit])
    return _send(list(due))


def _send_after_commit(tenant, ids: list[int]) -> None:
    try:
        with tenant_context(tenant):
            _send(list(Delivery.objects.filter(pk__in=ids).select_related("alert", "alert__tenant")))
    except Exception:  # sending must never break the caller; send_pending retries
        log.exception("sending alert deliveries %s failed", ids)


def _send(deliveries: list[Delivery]) -> SendReport:
    report = SendReport()
    for delivery in deliveries:
        outcome = _attempt(delivery)
        if outcome is True:
            report.sent += 1
        elif outcome is False:
            report.failed += 1
    return report


def _attempt(delivery: Delivery) -> bool | None:
    """Claim the delivery, send it, record the outcome. None when another sender claimed it first."""
    now = clock.now()
    attempts = delivery.attempts + 1
    claimed = Delivery.objects.filter(pk=delivery.pk, state=delivery.state, attempts=delivery.attempts).update(
        state=Delivery.State.SENDING, attempts=attempts, next_attempt_at=now + SENDING_LEASE)
    if not claimed:
        return None
    try:
        if delivery.channel == Delivery.Channel.EMAIL:
            email.send(delivery.alert, delivery)
        else:
            webhook.send(delivery.alert, delivery, _webhook_secret(delivery))
    except Exception as exc:  # noqa: BLE001 - any failure of a channel is recorded, never raised
        error = str(exc) or type(exc).__name__
        Delivery.objects.filter(pk=delivery.pk).update(
            state=Delivery.State.FAILED, last_error=error[:2000], next_attempt_at=now + backoff(attempts))
        log.warning("alert delivery %s (%s to %s) failed, attempt %s: %s", delivery.pk, delivery.channel,
                    delivery.target, attempts, error)
        return False
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENT, sent_at=clock.now(), last_error="")
    return True


def _webhook_secret(delivery: Delivery) -> str:
    settings = AlertSettings.objects.filter(tenant_id=delivery.tenant_id).first()
    if settings is None or not settings.webhook_secret:
        raise ValueError("the tenant has no webhook secret in its alert settings")
    return settings.webhook_secret


# --- acknowledging --------------------------------------------------------------------------------

def acknowledge(actor: Actor, alerts, reason: str = "") -> int:
    """Mark alerts as seen by `actor`; returns how many were not acknowledged before."""
    actor.require_write()
    done = 0
    with transaction.atomic():
        for alert in alerts:
            if alert.acknowledged_at is not None:
                continue
            alert.acknowledged_at, alert.acknowledged_by = clock.now(), actor.label[:200]
            alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
            audit.record(actor, "alert.acknowledge", alert, {"acknowledged_by": [None, alert.acknowledged_by]},
                         reason=reason)
            done += 1
    return done
