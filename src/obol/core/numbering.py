"""Per-tenant sequences. `next_value` must run inside the caller's transaction: the counter row
stays locked until that transaction ends, so numbers are gapless and never handed out twice."""
from __future__ import annotations

from django.db import IntegrityError, transaction

from obol.core.models import Counter
from obol.core.tenancy import current_tenant


def next_value(series: str) -> int:
    tenant = current_tenant()
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_value must run inside a transaction")
    counter = Counter.objects.select_for_update().filter(series=series).first()
    if counter is None:
        try:
            with transaction.atomic():
                Counter.objects.create(tenant=tenant, series=series)
        except IntegrityError:
            pass  # created concurrently; lock it below
        counter = Counter.objects.select_for_update().get(series=series)
    counter.last_value += 1
    counter.save(update_fields=["last_value"])
    return counter.last_value


def next_values(series: str, count: int) -> int:
    """A block of `count` consecutive values of the series; returns the first. As `next_value`:
    inside the caller's transaction, the counter stays locked until it ends."""
    first = next_value(series)
    if count > 1:
        counter = Counter.objects.get(series=series)  # locked by next_value
        counter.last_value += count - 1
        counter.save(update_fields=["last_value"])
    return first


def next_number(series: str, prefix: str, width: int = 6) -> str:
    return f"{prefix}{next_value(series):0{width}d}"
