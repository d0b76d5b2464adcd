"""Named transaction locks for check-then-insert rules that no unique constraint can express."""
from __future__ import annotations

import hashlib

from django.db import connection

from obol.core.tenancy import current_tenant


def serialise(*name: object) -> None:
    """Hold a lock named by (tenant, *name) until the current transaction ends, so concurrent
    transactions doing the same check queue one behind the other. PostgreSQL: an advisory
    transaction lock; SQLite has one writer at a time anyway, so nothing is needed there."""
    if connection.vendor != "postgresql":
        return
    key = ":".join(str(part) for part in (current_tenant().pk, *name))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])
