"""The audit trail: one function every app calls when it changes something that matters."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django.db import models

from obol.core.actors import Actor
from obol.core.models import AuditEvent


def jsonable(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def record(actor: Actor, action: str, obj: models.Model, changes: dict | None = None, reason: str = "") -> AuditEvent:
    """Write one audit row. `changes` maps field -> [old, new] (or any JSON-able detail)."""
    return AuditEvent.objects.create(
        tenant_id=obj.tenant_id if hasattr(obj, "tenant_id") else obj.pk,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=jsonable(changes or {}),
        reason=reason,
    )


def record_many(actor: Actor, action: str, items: list[tuple[models.Model, dict]], reason: str = "") -> None:
    """`record` for many objects at once (mass processes): one bulk insert, no object per row."""
    from obol.core import clock
    from obol.core.bulk import insert_values

    at = clock.now()
    insert_values(AuditEvent, ["tenant_id", "at", "actor_kind", "actor_id", "actor_label", "action", "object_type",
                               "object_id", "object_repr", "changes", "reason"],
                  [(obj.tenant_id, at, actor.kind, actor.id, actor.label[:200], action, obj._meta.label_lower,
                    str(obj.pk), str(obj)[:200], jsonable(changes or {}), reason) for obj, changes in items])


def diff(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields whose value changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def history(obj: models.Model):
    """The audit rows of one object, newest first."""
    return AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
